"""A small labelled corpus for clustering: short documents on distinct topics, built from topic sentences.

Each document is 3 sentences of one topic, drawn without repeats inside the document (seeded, so the corpus is
the same on every run). Used by tests/test_clusters.py and bench/bench_clusters.py.
"""

from __future__ import annotations

import random

TOPICS: dict[str, list[str]] = {
    "baking": [
        "Knead the bread dough for ten minutes until it feels smooth and elastic.",
        "Sourdough starter needs regular feeding with flour and water to stay active.",
        "Let the loaf rise in a warm kitchen until it has doubled in size.",
        "Preheat the oven to 220 degrees and put a tray of water on the bottom shelf for steam.",
        "A pinch of salt strengthens the gluten and improves the flavour of the crumb.",
        "Brush the croissants with beaten egg before baking for a shiny golden crust.",
        "Cream the butter and sugar together before folding in the flour for a light sponge cake.",
        "Rye flour makes a dense, dark loaf with a slightly sour taste.",
        "Proof the yeast in lukewarm milk with a teaspoon of sugar until it foams.",
        "Score the top of the dough with a sharp blade so the bread can expand in the oven.",
        "Cool the baguettes on a wire rack so the crust stays crisp.",
        "Whole wheat pastry flour gives muffins a nutty flavour and a tender texture.",
        "Blind bake the pie crust with ceramic weights so the pastry does not puff up.",
        "Cinnamon rolls are rolled from a sweet enriched dough spread with butter and brown sugar.",
        "An oven thermometer helps because many home ovens bake hotter than the dial says.",
        "Fold the dough every thirty minutes during bulk fermentation to build strength.",
    ],
    "astronomy": [
        "The telescope captured faint light from a galaxy billions of light years away.",
        "Jupiter's great red spot is a storm larger than the whole Earth.",
        "Astronomers measure the distance to nearby stars using parallax.",
        "A supernova can briefly outshine every other star in its galaxy.",
        "The rover drilled into Martian rock looking for signs of ancient water.",
        "Saturn's rings are made of countless pieces of ice and dust orbiting the planet.",
        "Black holes bend light so strongly that nothing escapes past the event horizon.",
        "The space station orbits the Earth about sixteen times every day.",
        "Comets grow glowing tails of gas and dust as they approach the Sun.",
        "Exoplanets are often found by the tiny dip in starlight when they transit their star.",
        "The Moon's craters record billions of years of asteroid impacts.",
        "Radio telescopes listen to cold hydrogen clouds between the stars.",
        "A launch window opens when the planets line up for an efficient transfer orbit.",
        "Neutron stars pack more mass than the Sun into a sphere the size of a city.",
        "The cosmic microwave background is the afterglow of the early universe.",
        "Observers in dark sites can see the band of the Milky Way with the naked eye.",
    ],
    "football": [
        "The striker scored a header from a corner kick in the final minute of the match.",
        "The goalkeeper saved a penalty and kept a clean sheet for the third game in a row.",
        "The referee showed a red card after a reckless tackle in midfield.",
        "The coach switched to a back three formation at half time.",
        "The club signed a young winger during the summer transfer window.",
        "Fans filled the stadium to watch the derby against their local rivals.",
        "The midfielder completed ninety percent of his passes and controlled the tempo.",
        "An offside flag ruled out what would have been the winning goal.",
        "The team climbed to the top of the league table after five straight wins.",
        "The defender cleared the ball off the goal line to rescue a draw.",
        "Extra time ended goalless, so the cup tie went to a penalty shootout.",
        "The captain lifted the trophy in front of the travelling supporters.",
        "A long ball over the defence found the forward running in behind.",
        "The manager rested several players before the champions league fixture.",
        "The free kick curled over the wall and into the top corner of the net.",
        "The youth academy has produced several players for the first team squad.",
    ],
    "gardening": [
        "Plant tomato seedlings after the last frost when the soil has warmed up.",
        "Mulch around the roses keeps the soil moist and suppresses weeds.",
        "Prune the apple tree in late winter while it is still dormant.",
        "Compost made from kitchen scraps and leaves feeds the vegetable beds.",
        "Water the lettuce early in the morning so the leaves dry before evening.",
        "Aphids on the beans can be washed off with a strong spray from the hose.",
        "Sow carrot seeds thinly in rows and thin the seedlings once they sprout.",
        "Raised beds drain well and warm up faster in spring.",
        "Divide overgrown perennials in autumn to keep the border healthy.",
        "Sweet peas need a trellis or netting to climb towards the sun.",
        "Rotate crops each year so soil diseases do not build up in one bed.",
        "Deadhead the geraniums to encourage more flowers through the summer.",
        "A rain barrel collects water from the roof for the flower beds.",
        "Plant garlic cloves in autumn, pointed end up, for a summer harvest.",
        "Earthworms in the soil are a sign of good structure and plenty of organic matter.",
        "Cover the cabbages with fine mesh to keep the caterpillars away.",
    ],
    "finance": [
        "An index fund spreads your savings across hundreds of companies at a low fee.",
        "Compound interest makes early contributions to a retirement account grow much larger.",
        "Pay off the credit card balance in full each month to avoid interest charges.",
        "An emergency fund should cover three to six months of living expenses.",
        "Bond prices fall when interest rates rise.",
        "A budget tracks income and spending so you know where the money goes.",
        "Diversification reduces the risk of losing money when one stock collapses.",
        "The mortgage rate was fixed for five years before it switched to a variable rate.",
        "Inflation erodes the purchasing power of cash kept in a savings account.",
        "Dividends are payments a company makes to its shareholders from its profits.",
        "A higher credit score can lower the interest rate on a car loan.",
        "Rebalance the portfolio once a year to keep the mix of stocks and bonds on target.",
        "Capital gains tax is due when you sell shares for more than you paid.",
        "Automatic transfers on payday make saving a habit.",
        "The central bank raised interest rates to slow down rising prices.",
        "Expense ratios matter because fees are taken from returns every single year.",
    ],
}


def documents(topics: list[str], per_topic: int, seed: int = 7) -> list[tuple[str, str, str]]:
    """(filename, text, topic) of `per_topic` documents for each topic, shuffled filenames' order aside."""
    rng = random.Random(seed)
    out: list[tuple[str, str, str]] = []
    for topic in topics:
        seen: set[tuple[int, ...]] = set()
        sentences = TOPICS[topic]
        while len([d for d in out if d[2] == topic]) < per_topic:
            pick = tuple(sorted(rng.sample(range(len(sentences)), 3)))
            if pick in seen:
                continue
            seen.add(pick)
            order = list(pick)
            rng.shuffle(order)
            n = len(seen)
            out.append((f"{topic}/doc-{n:03d}.txt", " ".join(sentences[i] for i in order), topic))
    return out

from inferline.cli import main

main()

"""The S3 endpoint subset (path-style, under `/s3`) that boto3 and other S3 clients use unchanged."""

"""Test client (boto3, Debian's python3-boto3) for the S3 stand-in, installed on backup-s3 by
prepare.yml. Credentials are read from the stand-in's 0600 settings file, never from argv.

    s3client.py ls BUCKET [PREFIX]     JSON list of keys
    s3client.py get BUCKET KEY         raw bytes to stdout
    s3client.py put BUCKET KEY         stdin to the object
    s3client.py rm BUCKET KEY
"""
import json
import sys

import boto3
from botocore.config import Config


def client():
    env = dict(line.split("=", 1) for line in open("/etc/llmops-standins/s3.env").read().splitlines() if "=" in line)
    return boto3.client("s3", endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
                        aws_access_key_id=env["MINIO_ROOT_USER"], aws_secret_access_key=env["MINIO_ROOT_PASSWORD"],
                        config=Config(s3={"addressing_style": "path"}))


def main(argv):
    s3 = client()
    cmd, bucket = argv[0], argv[1]
    if cmd == "ls":
        keys, token = [], None
        while True:
            kw = {"Bucket": bucket, "Prefix": argv[2] if len(argv) > 2 else ""}
            if token:
                kw["ContinuationToken"] = token
            page = s3.list_objects_v2(**kw)
            keys += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                break
        print(json.dumps(sorted(keys)))
    elif cmd == "get":
        sys.stdout.buffer.write(s3.get_object(Bucket=bucket, Key=argv[2])["Body"].read())
    elif cmd == "put":
        s3.put_object(Bucket=bucket, Key=argv[2], Body=sys.stdin.buffer.read())
    elif cmd == "rm":
        s3.delete_object(Bucket=bucket, Key=argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

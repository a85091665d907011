"""The S3 lake: one configuration, dagster-aws's `S3Resource`, for boto3 and for Spark's s3a.

Credentials are never copied into either: boto3 and s3a (hadoop-aws) both read them from the standard
AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, a profile, an instance or
pod role), so they stay out of run config, Spark's configuration and logs.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource

from pinterest_dagster.settings import Settings

S3A_SCHEME = "s3a://"


class LakeUnavailableError(RuntimeError):
    """The lake's bucket cannot be reached with the configured endpoint and credentials."""


def s3_resource(settings: Settings) -> S3Resource:
    return S3Resource(endpoint_url=settings.s3_endpoint_url, region_name=settings.aws_region)


def s3a_options(s3: S3Resource) -> dict[str, str]:
    """Hadoop options that point s3a where the resource points boto3."""
    options = {}
    if s3.endpoint_url:
        options["fs.s3a.endpoint"] = s3.endpoint_url
        # S3-compatible servers (MinIO, moto) serve buckets as paths, not as DNS names.
        options["fs.s3a.path.style.access"] = "true"
    if s3.region_name:
        options["fs.s3a.endpoint.region"] = s3.region_name
    return options


def bucket_of(root: str) -> str:
    bucket = root.removeprefix(S3A_SCHEME).split("/")[0]
    if not root.startswith(S3A_SCHEME) or not bucket:
        raise ValueError(f"{root!r} is not an s3a://bucket/prefix lake root")
    return bucket


def check_bucket(s3: S3Resource, root: str) -> None:
    """Fail with one sentence, before Spark's long s3a stack trace, when the lake's bucket is unreachable."""
    bucket = bucket_of(root)
    where = s3.endpoint_url or "AWS S3"
    try:
        s3.get_client().head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        reason = {"404": "does not exist", "NoSuchBucket": "does not exist", "403": "is not accessible with these credentials"}
        raise LakeUnavailableError(
            f"the lake's bucket {bucket!r} {reason.get(code, f'cannot be read ({code})')} at {where} "
            "(PINTEREST_LAKE_ROOT, AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        ) from None
    except BotoCoreError as error:
        raise LakeUnavailableError(
            f"cannot reach the lake's bucket {bucket!r} at {where}: {error} "
            "(PINTEREST_LAKE_ROOT, AWS_ENDPOINT_URL_S3, AWS credentials)"
        ) from None

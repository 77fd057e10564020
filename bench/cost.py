"""Monthly AWS bill of one fxfer stage, itemised, from its inputs (issue 14 items 5 and 6; docs/cost.md).

    python -m bench.cost                          # the two scenarios of docs/cost.md, every front door
    python -m bench.cost --transfers-per-day 200 --file-mib 100 --front-door http
    python -m bench.cost --short                  # what `make bench-short` runs

Stdlib only. Prices are list prices for Asia Pacific (Tokyo), ap-northeast-1, in USD, written down from the
AWS pricing pages as of November 2026 **without browsing them from here** (this machine reaches only package
registries): every one is to be re-checked on its page before anyone budgets with it. Tax is not included.

How many AWS requests one transfer causes was counted, not guessed: a throw-away test drove one transfer
through Django's test client on moto (sign-in, New transfer with 2 recipients and 2 files, a presigned-POST file
and a 3-part multipart file, verification and release, one recipient opening the link, asking for a code,
entering it, downloading both files), then ran the minute job, the hourly sweep after expiry and the daily
aggregation, and counted every botocore call per step (repeated with 4 recipients for the per-recipient
slopes). DynamoDB units were estimated from the item sizes sent and read (1 KB per write unit, doubled in a
transaction; 4 KB per read unit, halved when eventually consistent), counting one more write per global
secondary index whose keys the item carries (an upper bound: it assumes each index projects the whole item).
The constants below carry those figures and name the code path each comes from.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field, replace

PRICES_AS_OF = "November 2026 (from memory of the published list prices; to be re-checked)"
DAYS_PER_MONTH = 30
GiB = 1024**3
MiB = 1024**2

# --- Prices, ap-northeast-1, USD ---------------------------------------------------------------------------
# https://aws.amazon.com/lambda/pricing/ (x86_64; arm64 is 20 % less per GB-second)
LAMBDA_PER_MILLION_REQUESTS = 0.20
LAMBDA_PER_GB_SECOND = 0.0000166667
LAMBDA_FREE_REQUESTS = 1_000_000  # always-free tier, per month
LAMBDA_FREE_GB_SECONDS = 400_000
# https://aws.amazon.com/api-gateway/pricing/ (Tokyo; first 333 M REST / 300 M HTTP calls a month)
REST_API_PER_MILLION = 4.25
HTTP_API_PER_MILLION = 1.29  # metered in 512 KB increments; fxfer's pages are far smaller
# https://aws.amazon.com/cloudfront/pricing/ (Japan edge locations)
CLOUDFRONT_HTTPS_PER_10K = 0.0120
CLOUDFRONT_FREE_REQUESTS = 10_000_000  # always-free tier, per month
CLOUDFRONT_FREE_BYTES = 1024 * GiB  # 1 TB out, always free, per month
CLOUDFRONT_OUT_TIERS = [(10 * 1024, 0.114), (40 * 1024, 0.089), (100 * 1024, 0.086), (math.inf, 0.084)]  # GB, $/GB
# https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer (S3, Lambda, API Gateway out to the internet)
INTERNET_OUT_TIERS = [(10 * 1024, 0.114), (40 * 1024, 0.089), (100 * 1024, 0.086), (math.inf, 0.084)]
INTERNET_FREE_BYTES = 100 * GiB  # 100 GB out a month, always free, shared by every service of the account
# https://aws.amazon.com/s3/pricing/ (S3 Standard, Tokyo)
S3_STORAGE_PER_GB_MONTH = 0.025
S3_PUT_PER_1000 = 0.0047  # PUT, COPY, POST, LIST (presigned POST, UploadPart, Create/Complete, ListParts, ...)
S3_GET_PER_1000 = 0.00037  # GET, HEAD, and everything else
S3_LIFECYCLE_EXPIRATION = 0.0  # expiration actions are free; fxfer's rules never transition to another class
# https://aws.amazon.com/dynamodb/pricing/on-demand/ (Tokyo, after the November 2024 on-demand price cut)
DDB_PER_MILLION_WRU = 0.715
DDB_PER_MILLION_RRU = 0.1425
DDB_STORAGE_PER_GB_MONTH = 0.285
DDB_FREE_STORAGE_GB = 25
DDB_PITR_PER_GB_MONTH = 0.228
# https://aws.amazon.com/kms/pricing/
KMS_KEY_PER_MONTH = 1.00
KMS_PER_10K_REQUESTS = 0.03
KMS_FREE_REQUESTS = 20_000
# https://aws.amazon.com/ses/pricing/ (outbound mail sent from Lambda; the old 62,000-a-month allowance ended)
SES_PER_1000_MAILS = 0.10
# https://aws.amazon.com/cloudwatch/pricing/ (Tokyo)
LOGS_INGEST_PER_GB = 0.76
LOGS_STORAGE_PER_GB_MONTH = 0.033
LOGS_FREE_GB = 5  # ingestion and storage, each
METRIC_PER_MONTH = 0.30  # custom metrics (EMF creates them), first 10,000
METRICS_FREE = 10
ALARM_PER_MONTH = 0.10  # standard resolution, one metric
ALARMS_FREE = 10
# https://aws.amazon.com/xray/pricing/
XRAY_PER_MILLION_TRACES = 5.00
XRAY_FREE_TRACES = 100_000
# https://aws.amazon.com/sqs/pricing/ and https://aws.amazon.com/sns/pricing/
SQS_PER_MILLION = 0.40
SQS_FREE_REQUESTS = 1_000_000
SNS_PER_MILLION_PUBLISHES = 0.50
SNS_FREE_PUBLISHES = 1_000_000
# https://aws.amazon.com/route53/pricing/ (alias queries to API Gateway or CloudFront are free)
ROUTE53_ZONE_PER_MONTH = 0.50
# https://aws.amazon.com/waf/pricing/ (optional: on the REST API stage or on CloudFront; not on an HTTP API)
WAF_ACL_PER_MONTH = 5.00
WAF_RULE_PER_MONTH = 1.00
WAF_PER_MILLION_REQUESTS = 0.60
# https://aws.amazon.com/guardduty/pricing/ (Malware Protection for S3; the US East figures after the February 2025
# price cut, assumed for Tokyo too. The 12-month free tier of 1,000 objects and 1 GB a month is not counted.)
GUARDDUTY_S3_PER_GB_SCANNED = 0.09
GUARDDUTY_S3_PER_1000_OBJECTS = 0.215
# https://aws.amazon.com/s3/pricing/ (object tags, per 10,000 tags a month: GuardDuty tags each verdict)
S3_TAGS_PER_10K_MONTH = 0.01
# https://aws.amazon.com/vpc/pricing/ (only in the "what to avoid" figures)
NAT_GATEWAY_PER_HOUR = 0.062
NAT_GATEWAY_PER_GB = 0.062
INTERFACE_ENDPOINT_PER_HOUR_PER_AZ = 0.014

# --- What one transfer costs in requests (counted; see the module docstring) --------------------------------
# Lambda invocations through the front door (Django views), per step:
SIGNIN_REQUESTS = 3  # accounts/views.py: /saml/login (redirect), the ACS POST, the page it returns to
SENDER_PAGE_REQUESTS = 4  # transfers/views/sender.py: New transfer page, its POST, the transfer page, My transfers
# transfers/views/uploads.py: done (presigned POST) or complete (multipart). How each file goes up (its POST
# policy, or its multipart upload, started: the first three large files) comes with the New transfer POST's answer.
FILE_REQUESTS = 1
GUEST_VISIT_REQUESTS = 6  # transfers/views/guests.py: link (303), link page, code POST, code page, verify POST, files
PART_URL_BATCH = 20  # settings FXFER_PART_URL_BATCH: each batch is a POST (signed for the parts' CRCs)
MULTIPART_THRESHOLD = 100 * MiB  # settings FXFER_MULTIPART_THRESHOLD
PART_BYTES = 16 * MiB  # settings FXFER_MULTIPART_PART_BYTES

# DynamoDB units (read, write) per step, from the counted run (R = recipients, F = files):
DDB_SIGNIN = (3.0, 13.0)  # accounts/services.py: user, SAML replay cache, session, audit event
DDB_SENDER_PAGES = (7.0, 0.0)  # session reads; My transfers' Query (transfers/selectors.py)
DDB_CREATE_BASE = (2.5, 24.0)  # transfers/services/sending.py transfer_create: one transaction + BatchWrites
DDB_CREATE_PER_ITEM = 2.0  # per recipient (measured) and per file (assumed alike)
DDB_MULTIPART_START = (0.0, 1.0)  # transfers/services/sending.py multipart_start: the file records its upload
DDB_FILE_VERIFY = (7.5, 12.0)  # upload_done / file_verify: HeadObject, one transaction with its audit event
DDB_S3_EVENT = (4.0, 0.0)  # transfers/jobs.py on_object_created: finds the file already verified
DDB_RELEASE_BASE = (1.0, 19.0)  # transfer_release with the last file: the transfer, its event, ...
DDB_RELEASE_PER_RECIPIENT = (1.0, 31.0)  # ... and per recipient its link, outbox mail, mail.sent event
DDB_GUEST_VISIT = (20.5, 77.0)  # transfers/services/guests.py: link opens, code send (rate limits), code verify
DDB_DOWNLOAD = (6.5, 25.5)  # guest_download_url: conditional count, audit event, one notice per visit
DDB_PER_AUDIT_EVENT_CHAINED = (0.6, 8.5)  # reports/chain.py audit_chain_link: links each event into the chain
DDB_PER_AUDIT_EVENT_AGGREGATED = (0.15, 0.0)  # reports/aggregation.py: the day's events, one Query per shard
DDB_EXPIRY_BASE = (5.0, 54.0)  # transfers/services/expiry.py: deletion receipts, file.deleted events
DDB_EXPIRY_PER_RECIPIENT = (0.0, 2.0)
# The malware scan (transfers/services/scanning.py), per file: the verdict's transaction (the file and its
# file.scanned event, 2 items) and the reads of the file, its transfer and its files for the release.
DDB_SCAN_VERDICT = (3.0, 8.0)
# Idle runs of the scheduled jobs (nothing to do), per invocation:
DDB_EVERY_MINUTE_IDLE = (1.0, 0.0)  # two Queries: new events, mails due
DDB_SWEEP_IDLE = (11.5, 5.0)  # heal + sweep cursors: 15 Queries, 4 GetItem, 3 UpdateItem, a lease
DDB_AGGREGATE_FIXED = (4.0, 2.0)  # the day's shards, DailyStats and the summary mail's outbox item
# S3 requests per idle sweep: ListMultipartUploads + ListObjectVersions (orphan checks), both LIST (PUT-class)
S3_LIST_PER_SWEEP = 2
# Audit events per transfer: transfer.created, one file.verified per file, transfer.released, one mail.sent
# per mail, per visit three link.opened, code.sent, access.granted, one download.url_issued per download,
# then file.deleted per file and transfer.expired (counted in the run: 19 events before expiry at R=2, F=2).
EVENTS_PER_VISIT = 5
# Bytes in DynamoDB per transfer, kept until TTL/expiry removes them (items of ~0.4-1 KB, events the longest)
DDB_BYTES_PER_EVENT = 700
DDB_BYTES_PER_TRANSFER_ITEMS = 4 * 1024


@dataclass(frozen=True)
class Inputs:
    name: str = "custom"
    transfers_per_day: float = 5
    files_per_transfer: float = 2
    file_mib: float = 25
    recipients_per_transfer: float = 2
    visiting_share: float = 1.0  # recipients who open their link and download
    downloads_per_recipient: float = 1.0  # times each visiting recipient downloads each file
    retention_days: float = 7  # files kept (FXFER default expiry) before the sweep deletes them
    signins_per_transfer: float = 1.0
    front_door: str = "rest"  # rest | http | url (Function URL behind CloudFront)
    downloads_via_cloudfront: bool = False
    memory_mb: int = 1024
    web_ms: float = 250  # average billed duration of a web request, warm
    cold_start_share: float = 0.05
    cold_start_ms: float = 700  # INIT is billed for zip functions since August 2025
    page_kib: float = 20  # what a page or JSON answer sends back through the front door
    log_kib_per_invocation: float = 1.5  # one JSON line per request/job, EMF, Lambda's START/END/REPORT
    log_retention_days: float = 90  # provision's FXFER_LOG_RETENTION_DAYS; 0 = never expire (a new group's default)
    xray_sampling: float = 0.05  # the default rule: the first request each second, then 5 %
    xray_reservoir_per_second: float = 1
    custom_metrics: int = 23  # fxfer/observability.py: 13 by {service, stage}, JobSucceeded/JobFailed per job (5)
    alarms: int = 15  # fxfer/provisioning.py _monitoring
    malware_scan: bool = True  # GuardDuty Malware Protection for S3 on files/ (FXFER_SCANNER=guardduty)
    audit_retention_days: float = 3 * 365  # settings FXFER_AUDIT_RETENTION_DAYS
    bucket_keys: bool = True
    mail_bounce_share: float = 0.02
    failed_events_per_month: float = 10
    free_tier: bool = True
    route53_zone: bool = True  # the custom domain's hosted zone
    waf_rules: int = 0  # a WAF web ACL with this many rules (0: none)
    # Static files (issue 15 item 7): hashed names behind their own CloudFront distribution, cached for a year, so
    # a browser fetches them once. Each guest visit and each sign-in counts as a browser without them (an upper
    # bound); it fetches at most the uploader's page's files: 9 files, 230 KiB gzipped (Uppy is 178 KiB of it).
    static_kib_per_browser: float = 230
    static_files_per_browser: float = 9
    static_deploys_per_month: float = 4  # collectstatic: a PUT per plain and hashed name, a HEAD per file
    static_files: int = 141  # the manifest's entries (admin's included)
    static_releases_kept: int = 50  # hashed files are never deleted (open pages, rollbacks): ~2 MB a release


@dataclass
class Item:
    service: str
    what: str
    usd: float
    detail: str = ""


@dataclass
class Bill:
    inputs: Inputs
    items: list[Item] = field(default_factory=list)
    usage: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(item.usd for item in self.items)

    def by_service(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for item in self.items:
            totals[item.service] = totals.get(item.service, 0.0) + item.usd
        return totals


def tiered(gb: float, tiers: list[tuple[float, float]]) -> float:
    cost, lower = 0.0, 0.0
    for upper, price in tiers:
        if gb <= lower:
            break
        cost += (min(gb, upper) - lower) * price
        lower = upper
    return cost


def _free(x: Inputs, usage: float, allowance: float) -> float:
    return max(0.0, usage - allowance) if x.free_tier else usage


def per_transfer(x: Inputs) -> dict:
    """Requests and units one transfer causes, from the counted constants above."""
    files, recipients = x.files_per_transfer, x.recipients_per_transfer
    visits = recipients * x.visiting_share
    downloads = visits * files * x.downloads_per_recipient
    file_bytes = x.file_mib * MiB
    multipart = file_bytes > MULTIPART_THRESHOLD
    parts = math.ceil(file_bytes / PART_BYTES) if multipart else 1
    batches = math.ceil(parts / PART_URL_BATCH) if multipart else 0  # part URL calls
    web = (
        SIGNIN_REQUESTS * x.signins_per_transfer
        + SENDER_PAGE_REQUESTS
        + files * (FILE_REQUESTS + batches)
        + visits * GUEST_VISIT_REQUESTS
        + downloads
    )
    mails = recipients + visits * 1 + visits * 1  # link mails; a code per visit; one download notice per visit
    events = 1 + 2 * files + 1 + mails + visits * EVENTS_PER_VISIT + downloads + 1 + x.signins_per_transfer
    scanned = files if x.malware_scan else 0
    events += scanned  # file.scanned
    rru = wru = 0.0
    for (r, w), n in [
        (DDB_SIGNIN, x.signins_per_transfer),
        (DDB_SENDER_PAGES, 1),
        (DDB_CREATE_BASE, 1),
        ((0.0, DDB_CREATE_PER_ITEM), files + recipients),
        (DDB_MULTIPART_START, files if multipart else 0),
        (DDB_FILE_VERIFY, files),
        (DDB_S3_EVENT, files),
        (DDB_RELEASE_BASE, 1),
        (DDB_RELEASE_PER_RECIPIENT, recipients),
        (DDB_GUEST_VISIT, visits),
        (DDB_DOWNLOAD, downloads),
        (DDB_PER_AUDIT_EVENT_CHAINED, events),
        (DDB_PER_AUDIT_EVENT_AGGREGATED, events),
        (DDB_EXPIRY_BASE, 1),
        (DDB_EXPIRY_PER_RECIPIENT, recipients),
        (DDB_SCAN_VERDICT, scanned),
    ]:
        rru += r * n
        wru += w * n
    # S3: a presigned POST is one POST; multipart is Create + parts + Complete + ListParts (PUT-class);
    # verification is HeadObject + ListObjectVersions (uploads.py); downloads are GETs; the S3 event's check
    # lists versions too; deletion is free (DeleteObject).
    s3_put = files * ((1 + parts + 2) if multipart else 1) + files * 2  # + ListObjectVersions on verify, event
    s3_get = files * 1 + downloads  # HeadObject on verify, the recipients' GETs
    # The scan: GuardDuty's GET of the object and its PutObjectTagging (billed to the bucket's owner), fxfer's
    # GetObjectVersionTagging at verification (the verdict is rarely there yet; the event brings it).
    s3_put += scanned
    s3_get += scanned * 2
    return {
        "web_requests": web,
        "s3_events": files + scanned,  # one asynchronous invocation per ObjectCreated notification and per verdict
        "scanned_files": scanned,
        "mails": mails,
        "audit_events": events,
        "rru": rru,
        "wru": wru,
        "s3_put": s3_put,
        "s3_get": s3_get,
        "parts": parts if multipart else 0,
        "upload_bytes": files * file_bytes,
        "download_bytes": downloads * file_bytes,
        "downloads": downloads,
    }


def model(x: Inputs) -> Bill:
    bill = Bill(inputs=x)
    add = bill.items.append
    one = per_transfer(x)
    month = x.transfers_per_day * DAYS_PER_MONTH
    web = one["web_requests"] * month
    s3_events = one["s3_events"] * month
    minute_runs, sweep_runs, aggregate_runs = 60 * 24 * DAYS_PER_MONTH, 24 * DAYS_PER_MONTH, DAYS_PER_MONTH
    jobs = minute_runs + sweep_runs + aggregate_runs
    invocations = web + s3_events + jobs
    gb = x.memory_mb / 1024
    # Job durations: the minute job idle ~30 ms (two Queries) plus ~5 ms per event it links; the sweep idle
    # ~300 ms (15 Queries); the aggregation ~2 s plus ~1 ms per event of the day (bench.aggregate).
    events_month = one["audit_events"] * month
    job_seconds = minute_runs * 0.03 + events_month * 0.005 + sweep_runs * 0.3 + month * 0.2
    job_seconds += aggregate_runs * 2 + events_month * 0.001
    web_seconds = (web + s3_events) * x.web_ms / 1000
    cold_seconds = invocations * x.cold_start_share * x.cold_start_ms / 1000
    gb_seconds = (web_seconds + job_seconds + cold_seconds) * gb
    bill.usage.update(per_transfer=one, web_requests=web, invocations=invocations, gb_seconds=gb_seconds)

    # Lambda
    add(
        Item(
            "Lambda",
            "requests",
            _free(x, invocations, LAMBDA_FREE_REQUESTS) / 1e6 * LAMBDA_PER_MILLION_REQUESTS,
            f"{invocations:,.0f} (web {web:,.0f}, S3 and scan events {s3_events:,.0f}, jobs {jobs:,})",
        )
    )
    add(
        Item(
            "Lambda",
            "duration",
            _free(x, gb_seconds, LAMBDA_FREE_GB_SECONDS) * LAMBDA_PER_GB_SECOND,
            f"{gb_seconds:,.0f} GB-s at {x.memory_mb} MB (jobs {job_seconds * gb:,.0f})",
        )
    )

    # Front door
    page_bytes = web * x.page_kib * 1024
    if x.front_door == "rest":
        add(Item("Front door", "API Gateway REST API calls", web / 1e6 * REST_API_PER_MILLION, f"{web:,.0f} calls"))
    elif x.front_door == "http":
        add(Item("Front door", "API Gateway HTTP API calls", web / 1e6 * HTTP_API_PER_MILLION, f"{web:,.0f} calls"))
    elif x.front_door == "url":
        add(Item("Front door", "Lambda Function URL", 0.0, "no per-request charge"))
        add(
            Item(
                "Front door",
                "CloudFront HTTPS requests",
                _free(x, web, CLOUDFRONT_FREE_REQUESTS) / 1e4 * CLOUDFRONT_HTTPS_PER_10K,
                f"{web:,.0f} requests",
            )
        )
    else:
        raise ValueError(f"front door {x.front_door!r}: rest, http or url")
    if x.waf_rules:
        if x.front_door == "http":
            raise ValueError("an HTTP API cannot have a WAF web ACL: use rest or url")
        waf = WAF_ACL_PER_MONTH + x.waf_rules * WAF_RULE_PER_MONTH + web / 1e6 * WAF_PER_MILLION_REQUESTS
        add(Item("Front door", "WAF web ACL", waf, f"1 ACL, {x.waf_rules} rules, {web:,.0f} requests"))
    if x.route53_zone:
        add(Item("Front door", "Route 53 hosted zone (custom domain)", ROUTE53_ZONE_PER_MONTH, "alias queries free"))

    # Data transfer out: the files (presigned S3 GETs, or CloudFront in front of the bucket) and the pages
    download_gb = one["download_bytes"] * month / GiB
    page_gb = page_bytes / GiB
    internet_gb = page_gb if x.front_door != "url" else 0.0
    cloudfront_gb = page_gb if x.front_door == "url" else 0.0
    if x.downloads_via_cloudfront:
        cloudfront_gb += download_gb
    else:
        internet_gb += download_gb
    internet_billable = _free(x, internet_gb, INTERNET_FREE_BYTES / GiB)
    add(
        Item(
            "Data transfer",
            "out to the internet (S3 downloads, pages)",
            tiered(internet_billable, INTERNET_OUT_TIERS),
            f"{internet_gb:,.1f} GB",
        )
    )
    if cloudfront_gb:
        billable = _free(x, cloudfront_gb, CLOUDFRONT_FREE_BYTES / GiB)
        add(Item("Data transfer", "CloudFront out", tiered(billable, CLOUDFRONT_OUT_TIERS), f"{cloudfront_gb:,.1f} GB"))
    # Uploads into S3 are free (data transfer in).

    # Static files: CloudFront's always-free allowances go first to what the front door already uses there.
    browsers = month * (x.recipients_per_transfer * x.visiting_share + x.signins_per_transfer)
    static_requests = browsers * x.static_files_per_browser
    static_gb = browsers * x.static_kib_per_browser * 1024 / GiB
    door_requests = web if x.front_door == "url" else 0.0
    cf_requests = _free(x, door_requests + static_requests, CLOUDFRONT_FREE_REQUESTS) - _free(
        x, door_requests, CLOUDFRONT_FREE_REQUESTS
    )
    cf_gb = tiered(_free(x, cloudfront_gb + static_gb, CLOUDFRONT_FREE_BYTES / GiB), CLOUDFRONT_OUT_TIERS) - tiered(
        _free(x, cloudfront_gb, CLOUDFRONT_FREE_BYTES / GiB), CLOUDFRONT_OUT_TIERS
    )
    add(
        Item(
            "Static files",
            "CloudFront requests and out",
            cf_requests / 1e4 * CLOUDFRONT_HTTPS_PER_10K + cf_gb,
            f"{static_requests:,.0f} requests, {static_gb:,.2f} GB",
        )
    )
    static_puts = x.static_deploys_per_month * x.static_files * 2
    static_stored_gb = x.static_releases_kept * 2 * MiB / GiB
    add(
        Item(
            "Static files",
            "S3 bucket (collectstatic PUTs, storage)",
            static_puts / 1000 * S3_PUT_PER_1000
            + x.static_deploys_per_month * x.static_files / 1000 * S3_GET_PER_1000
            + static_stored_gb * S3_STORAGE_PER_GB_MONTH,
            f"{static_puts:,.0f} PUTs, {static_stored_gb:,.2f} GB",
        )
    )

    # S3
    stored_gb = one["upload_bytes"] * x.transfers_per_day * x.retention_days / GiB
    add(Item("S3", "storage (Standard)", stored_gb * S3_STORAGE_PER_GB_MONTH, f"{stored_gb:,.1f} GB-month"))
    puts = one["s3_put"] * month + sweep_runs * S3_LIST_PER_SWEEP
    gets = one["s3_get"] * month
    add(Item("S3", "PUT/POST/LIST requests", puts / 1000 * S3_PUT_PER_1000, f"{puts:,.0f}"))
    add(Item("S3", "GET/HEAD requests", gets / 1000 * S3_GET_PER_1000, f"{gets:,.0f}"))
    add(Item("S3", "lifecycle backstop (expiration only)", S3_LIFECYCLE_EXPIRATION, "expiration is free"))
    if x.malware_scan:
        scanned = one["scanned_files"] * month
        scanned_gb = scanned * x.file_mib * MiB / GiB
        tags = one["scanned_files"] * x.transfers_per_day * x.retention_days  # a tag per stored object
        add(Item("S3", "object tags (scan verdicts)", tags / 1e4 * S3_TAGS_PER_10K_MONTH, f"{tags:,.0f} tags"))
        add(
            Item(
                "GuardDuty",
                "Malware Protection for S3: objects",
                scanned / 1000 * GUARDDUTY_S3_PER_1000_OBJECTS,
                f"{scanned:,.0f} objects",
            )
        )
        add(
            Item(
                "GuardDuty",
                "Malware Protection for S3: data scanned",
                scanned_gb * GUARDDUTY_S3_PER_GB_SCANNED,
                f"{scanned_gb:,.1f} GB",
            )
        )

    # DynamoDB
    rru = one["rru"] * month + minute_runs * DDB_EVERY_MINUTE_IDLE[0] + sweep_runs * DDB_SWEEP_IDLE[0]
    rru += aggregate_runs * DDB_AGGREGATE_FIXED[0]
    wru = one["wru"] * month + sweep_runs * DDB_SWEEP_IDLE[1] + aggregate_runs * DDB_AGGREGATE_FIXED[1]
    add(Item("DynamoDB", "write request units", wru / 1e6 * DDB_PER_MILLION_WRU, f"{wru:,.0f}"))
    add(Item("DynamoDB", "read request units", rru / 1e6 * DDB_PER_MILLION_RRU, f"{rru:,.0f}"))
    table_gb = (
        events_month / DAYS_PER_MONTH * x.audit_retention_days * DDB_BYTES_PER_EVENT
        + x.transfers_per_day * x.retention_days * DDB_BYTES_PER_TRANSFER_ITEMS
    ) / GiB
    add(
        Item(
            "DynamoDB",
            "storage",
            _free(x, table_gb, DDB_FREE_STORAGE_GB) * DDB_STORAGE_PER_GB_MONTH,
            f"{table_gb:,.2f} GB (audit kept {x.audit_retention_days:,.0f} days)",
        )
    )
    add(Item("DynamoDB", "point-in-time recovery", table_gb * DDB_PITR_PER_GB_MONTH, f"{table_gb:,.2f} GB"))

    # KMS: one customer managed key. With S3 Bucket Keys, S3 asks KMS for a bucket-level key now and then
    # instead of one data key per object/part/GET (AWS: "up to 99 %" fewer calls); we count 1 %.
    # Without them: a data key per POST, per part, per Complete, and a Decrypt per GET.
    object_kms_calls = (
        x.files_per_transfer * (max(one["parts"], 1) + (2 if one["parts"] else 0)) + one["downloads"]
    ) * month
    kms_calls = object_kms_calls * (0.01 if x.bucket_keys else 1.0) + invocations * x.cold_start_share  # DescribeKey
    add(Item("KMS", "customer managed key", KMS_KEY_PER_MONTH, "1 key"))
    add(
        Item(
            "KMS",
            "requests" + (" (bucket keys on)" if x.bucket_keys else " (no bucket keys)"),
            _free(x, kms_calls, KMS_FREE_REQUESTS) / 1e4 * KMS_PER_10K_REQUESTS,
            f"{kms_calls:,.0f}",
        )
    )

    # SES
    mails = one["mails"] * month + aggregate_runs  # + the daily compliance summary
    add(Item("SES", "outbound mail", mails / 1000 * SES_PER_1000_MAILS, f"{mails:,.0f} mails"))

    # CloudWatch
    log_gb = invocations * x.log_kib_per_invocation * 1024 / GiB
    add(Item("CloudWatch", "Logs ingestion", _free(x, log_gb, LOGS_FREE_GB) * LOGS_INGEST_PER_GB, f"{log_gb:,.2f} GB"))
    if x.log_retention_days:
        stored_logs = log_gb * x.log_retention_days / DAYS_PER_MONTH
        kept = f"{x.log_retention_days:g}-day retention"
    else:
        stored_logs = log_gb * 12  # never expiring: a year in, twelve months are stored, and it keeps growing
        kept = "never expire: after 12 months, still growing"
    add(
        Item(
            "CloudWatch",
            "Logs storage",
            _free(x, stored_logs, LOGS_FREE_GB) * LOGS_STORAGE_PER_GB_MONTH,
            f"{stored_logs:,.2f} GB ({kept})",
        )
    )
    add(
        Item(
            "CloudWatch",
            "custom metrics (EMF)",
            max(0, x.custom_metrics - (METRICS_FREE if x.free_tier else 0)) * METRIC_PER_MONTH,
            f"{x.custom_metrics} metrics",
        )
    )
    add(
        Item(
            "CloudWatch",
            "alarms",
            max(0, x.alarms - (ALARMS_FREE if x.free_tier else 0)) * ALARM_PER_MONTH,
            f"{x.alarms} alarms",
        )
    )

    # X-Ray: the reservoir traces the first request of each second, then the rate samples the rest. Requests
    # spread over ~12 busy hours a day fill at most that many seconds.
    busy_seconds = 12 * 3600 * DAYS_PER_MONTH * x.xray_reservoir_per_second
    reservoir = min(invocations, busy_seconds)
    traces = reservoir + (invocations - reservoir) * x.xray_sampling
    add(
        Item(
            "X-Ray",
            "traces recorded",
            _free(x, traces, XRAY_FREE_TRACES) / 1e6 * XRAY_PER_MILLION_TRACES,
            f"{traces:,.0f} traces",
        )
    )

    # SQS: the on-failure queue receives only failed events; the operator's page reads its attributes.
    sqs = x.failed_events_per_month * 3 + 1000
    add(
        Item(
            "SQS", "on-failure queue requests", _free(x, sqs, SQS_FREE_REQUESTS) / 1e6 * SQS_PER_MILLION, f"{sqs:,.0f}"
        )
    )
    # SNS: SES publishes bounces and complaints only; delivery to Lambda is free.
    publishes = mails * x.mail_bounce_share
    add(
        Item(
            "SNS",
            "SES bounce/complaint notifications",
            _free(x, publishes, SNS_FREE_PUBLISHES) / 1e6 * SNS_PER_MILLION_PUBLISHES,
            f"{publishes:,.0f} publishes",
        )
    )
    add(Item("EventBridge", "schedule rules (minute, hourly, daily)", 0.0, "scheduled rules are free"))
    return bill


SCENARIOS = {
    "small": Inputs(name="5 transfers a day", transfers_per_day=5),
    "large": Inputs(name="10,000 transfers a day", transfers_per_day=10_000, signins_per_transfer=0.25),
}


def render(bill: Bill) -> str:
    x = bill.inputs
    one = bill.usage["per_transfer"]
    lines = [
        f"== {x.name}: {x.transfers_per_day:,g} transfers/day, {x.files_per_transfer:g} files of {x.file_mib:g} MiB, "
        f"{x.recipients_per_transfer:g} recipients, {x.visiting_share:.0%} download each file "
        f"{x.downloads_per_recipient:g}x, kept {x.retention_days:g} days; front door {x.front_door}, "
        f"{x.memory_mb} MB, X-Ray {x.xray_sampling:.0%}, logs {x.log_retention_days:g} days "
        f"({'always-free tiers applied' if x.free_tier else 'no free tier'})",
        f"   per transfer: {one['web_requests']:g} web requests, {one['mails']:g} mails, {one['audit_events']:g} "
        f"audit events, {one['rru']:.0f} read / {one['wru']:.0f} write units",
        f"   {'service':<14}{'item':<44}{'USD/month':>12}  usage",
    ]
    for item in bill.items:
        lines.append(f"   {item.service:<14}{item.what:<44}{item.usd:>12,.2f}  {item.detail}")
    lines.append(f"   {'TOTAL':<58}{bill.total:>12,.2f}")
    top = sorted(bill.by_service().items(), key=lambda kv: -kv[1])[:3]
    if bill.total:
        lines.append("   largest: " + ", ".join(f"{s} {v / bill.total:.0%}" for s, v in top))
    return "\n".join(lines)


def front_doors(base: Inputs) -> str:
    """The three front doors side by side for one scenario: what the front door itself costs."""
    lines = [f"   front door at {base.transfers_per_day:,g}/day:"]
    for door in ("rest", "http", "url"):
        no_waf = door == "http" and base.waf_rules
        bill = model(replace(base, front_door=door, waf_rules=0 if no_waf else base.waf_rules))
        cost = sum(i.usd for i in bill.items if i.service == "Front door")
        note = "  (an HTTP API takes no WAF)" if no_waf else ""
        lines.append(f"     {door:<5} front door {cost:>9,.2f}  total {bill.total:>10,.2f}{note}")
    return "\n".join(lines)


def avoid(base: Inputs) -> str:
    """What the choices docs/cost.md warns about would add to a scenario."""
    bill = model(base)
    rows = [
        ("NAT gateway (1 AZ, for a Lambda in a VPC)", NAT_GATEWAY_PER_HOUR * 24 * DAYS_PER_MONTH),
        (
            "VPC interface endpoints instead (KMS, SES, SQS, X-Ray, Logs; 2 AZ)",
            5 * 2 * INTERFACE_ENDPOINT_PER_HOUR_PER_AZ * 24 * DAYS_PER_MONTH,
        ),
        (
            "REST API instead of HTTP API",
            model(replace(base, front_door="rest")).total - model(replace(base, front_door="http")).total,
        ),
        ("no S3 Bucket Keys", model(replace(base, bucket_keys=False)).total - bill.total),
        ("logs never expire (after a year)", model(replace(base, log_retention_days=0)).total - bill.total),
        ("X-Ray at 100 %", model(replace(base, xray_sampling=1.0)).total - bill.total),
    ]
    return "\n".join(
        [f"   what to avoid adds at {base.transfers_per_day:,g}/day (USD/month):"]
        + [f"     {what:<72}{usd:>10,.2f}" for what, usd in rows]
    )


def parse(argv: list[str]) -> tuple[argparse.Namespace, Inputs, bool]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="the two scenarios, totals and front doors only")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), help="start from a named scenario")
    defaults = Inputs()
    for name, value in vars(defaults).items():
        if name == "name":
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif name == "front_door":
            parser.add_argument(flag, choices=["rest", "http", "url"], default=None)
        else:
            parser.add_argument(flag, type=type(value), default=None)
    args = parser.parse_args(argv)
    base = SCENARIOS[args.scenario] if args.scenario else defaults
    changes = {k: v for k, v in vars(args).items() if k in vars(defaults) and v is not None}
    if changes:
        changes["name"] = f"{base.name}, changed" if args.scenario else "custom"
    return args, replace(base, **changes), bool(changes or args.scenario)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, inputs, custom = parse(argv)
    print(f"fxfer monthly cost model, ap-northeast-1, USD; prices as of {PRICES_AS_OF}")
    scenarios = [inputs] if custom else list(SCENARIOS.values())
    for scenario in scenarios:
        try:
            bill = model(scenario)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.short:
            print(f"== {scenario.name}: total {bill.total:,.2f} USD/month")
            print(front_doors(scenario))
        else:
            print(render(bill))
            print(front_doors(scenario))
            print(avoid(scenario))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

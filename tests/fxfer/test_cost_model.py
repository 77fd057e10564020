"""bench/cost.py: the monthly bill docs/cost.md prints, read the way an operator reads it."""

import math
from dataclasses import replace

import pytest

from bench import cost

SMALL = cost.SCENARIOS["small"]
LARGE = cost.SCENARIOS["large"]


def usd(bill: cost.Bill, service: str) -> float:
    return bill.by_service().get(service, 0.0)


@pytest.mark.parametrize("scenario", [SMALL, LARGE], ids=["5/day", "10000/day"])
def test_the_total_is_the_sum_of_the_items_shown(scenario):
    bill = cost.model(scenario)
    assert bill.total == pytest.approx(sum(item.usd for item in bill.items))
    assert all(item.usd >= 0 for item in bill.items)
    printed = cost.render(bill)
    assert f"{bill.total:,.2f}" in printed.splitlines()[-2]


def test_egress_dominates_at_ten_thousand_transfers_a_day():
    bill = cost.model(LARGE)
    services = bill.by_service()
    assert max(services, key=services.get) == "Data transfer"
    assert services["Data transfer"] > bill.total / 2


def test_at_five_a_day_the_fixed_costs_are_most_of_a_small_bill():
    bill = cost.model(SMALL)
    assert bill.total < 10
    fixed = sum(i.usd for i in bill.items if i.what in {"customer managed key", "custom metrics (EMF)", "alarms"})
    assert fixed > bill.total / 2


def test_a_function_url_has_no_per_request_charge_and_rest_costs_more_than_http():
    doors = {door: cost.model(replace(LARGE, front_door=door)) for door in ("rest", "http", "url")}
    front = {door: usd(bill, "Front door") for door, bill in doors.items()}
    url_item = next(i for i in doors["url"].items if i.what == "Lambda Function URL")
    assert url_item.usd == 0
    assert front["rest"] > 3 * front["http"] > 0
    # Everything but the front door is the same bill.
    assert doors["rest"].total - front["rest"] == pytest.approx(doors["http"].total - front["http"])


def test_cloudfront_requests_are_charged_past_its_free_allowance():
    busy = replace(LARGE, front_door="url", transfers_per_day=100_000)
    item = next(i for i in cost.model(busy).items if i.what == "CloudFront HTTPS requests")
    assert item.usd > 0
    assert next(i for i in cost.model(replace(busy, free_tier=False)).items if i.what == item.what).usd > item.usd


def test_doubling_downloads_raises_egress():
    once = cost.model(LARGE)
    twice = cost.model(replace(LARGE, downloads_per_recipient=2))
    assert usd(twice, "Data transfer") > 1.8 * usd(once, "Data transfer")
    assert twice.total > once.total


def test_more_recipients_mean_more_mails_and_dynamodb_writes():
    two = cost.model(LARGE)
    five = cost.model(replace(LARGE, recipients_per_transfer=5))
    assert usd(five, "SES") > 2 * usd(two, "SES")
    assert usd(five, "DynamoDB") > usd(two, "DynamoDB")


def test_the_scheduled_jobs_run_every_month_even_without_transfers():
    idle = cost.model(replace(SMALL, transfers_per_day=0, free_tier=False))
    lambda_requests = next(i for i in idle.items if i.service == "Lambda" and i.what == "requests")
    # every minute, every hour and every day of a 30-day month
    assert lambda_requests.usd == pytest.approx((43_200 + 720 + 30) / 1e6 * cost.LAMBDA_PER_MILLION_REQUESTS)
    assert idle.total > cost.KMS_KEY_PER_MONTH


def test_bucket_keys_short_logs_and_sampled_traces_are_cheaper():
    base = replace(LARGE, free_tier=False)
    assert cost.model(replace(base, bucket_keys=False)).total > cost.model(base).total
    assert cost.model(replace(base, log_retention_days=0)).total > cost.model(base).total
    assert cost.model(replace(base, xray_sampling=1.0)).total > cost.model(base).total


def test_large_files_go_up_in_parts_that_each_cost_a_put():
    small_files = cost.per_transfer(replace(LARGE, file_mib=25))
    big_files = cost.per_transfer(replace(LARGE, file_mib=1024))
    assert small_files["parts"] == 0
    assert big_files["parts"] == math.ceil(1024 * cost.MiB / cost.PART_BYTES)
    assert big_files["s3_put"] > small_files["s3_put"] + big_files["parts"]


def test_the_command_line_prints_one_scenario_from_its_options(capsys):
    assert cost.main(["--transfers-per-day", "200", "--front-door", "http", "--no-free-tier"]) == 0
    out = capsys.readouterr().out
    assert "200 transfers/day" in out and "front door http" in out and "no free tier" in out
    assert "API Gateway HTTP API calls" in out
    assert "10,000 transfers a day" not in out


def test_short_mode_prints_both_scenarios_and_every_front_door(capsys):
    assert cost.main(["--short"]) == 0
    out = capsys.readouterr().out
    assert "5 transfers a day" in out and "10,000 transfers a day" in out
    for door in ("rest", "http", "url"):
        assert out.count(f"     {door} ") == 2
    assert "to be re-checked" in out


def test_a_waf_costs_the_same_on_rest_and_cloudfront_and_an_http_api_cannot_have_one(capsys):
    rest = cost.model(replace(LARGE, waf_rules=5))
    url = cost.model(replace(LARGE, front_door="url", waf_rules=5))
    waf = [next(i.usd for i in bill.items if i.what == "WAF web ACL") for bill in (rest, url)]
    assert waf[0] == waf[1] > cost.WAF_ACL_PER_MONTH + 5 * cost.WAF_RULE_PER_MONTH
    with pytest.raises(ValueError, match="HTTP API"):
        cost.model(replace(LARGE, front_door="http", waf_rules=5))
    assert cost.main(["--front-door", "http", "--waf-rules", "2"]) == 2
    assert "cannot have a WAF" in capsys.readouterr().err


def test_docs_cost_md_shows_what_the_script_prints_now(capsys):
    """A price or count changed in bench/cost.py without re-pasting its output would leave the page wrong."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text()
    assert cost.main([]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    assert f"$ python3 -m bench.cost\n{printed}\n```" in page


def test_static_files_come_from_cloudfront_inside_its_free_allowance_at_ten_thousand_a_day():
    def static(bill):
        return [i for i in bill.items if i.service == "Static files"]

    free = static(cost.model(LARGE))
    assert {i.what for i in free} == {"CloudFront requests and out", "S3 bucket (collectstatic PUTs, storage)"}
    assert sum(i.usd for i in free) < 0.05
    # Without the always-free allowance the requests and bytes are billed; more browsers, more of both.
    billed = sum(i.usd for i in static(cost.model(replace(LARGE, free_tier=False))))
    assert billed > 10
    assert sum(i.usd for i in static(cost.model(replace(LARGE, free_tier=False, signins_per_transfer=1)))) > billed

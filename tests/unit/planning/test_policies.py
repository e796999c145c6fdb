"""Support policies: checked field by field; an enterprise gets exactly the policies whose
criteria it meets, once each, however often its profile is written; a match is explained."""

import random
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.core.settings import PROJECT_ROOT
from app.intake.events import validate_event
from app.planning.policies import Bounds, Policy, load_policy_files, match, parse_policy
from app.profiles.validate import parse_profile
from tests.helpers import ON_BOTH_REDIS, acting_planner, business_event, contact

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(SHANGHAI).date()
STARTUP = {"id": "startup-rent", "name": "初创企业租金补贴", "summary": "租金补贴",
           "confirm": "租赁合同", "where": "i深圳", "districts": ["440308"],
           "criteria": {"sizes": ["micro", "small"], "age_months": {"max": 36}}}  # fmt: skip


def firm(eid: str, **extra) -> dict:
    return {"id": eid, "kind": "enterprise", "name": f"{eid}公司", "district": "440308",
            "contacts": [contact("legal_representative", "13900000001")], **extra}  # fmt: skip


def test_the_shipped_policies_are_valid():
    found, errors = load_policy_files(PROJECT_ROOT / "policies")
    assert errors == [] and len(found) >= 4


@pytest.mark.parametrize(
    "change, field",
    [
        ({"id": "Bad Id"}, "id"),
        ({"summary": ""}, "summary"),
        ({"name": "长" * 101}, "name"),
        ({"valid_from": "2027-13-01"}, "valid_from"),
        ({"valid_from": "2027-06-01", "valid_until": "2027-01-01"}, "valid_until"),
        ({"districts": ["4403"]}, "districts"),
        ({"criteria": {"sizes": ["huge"]}}, "criteria.sizes"),
        (
            {"criteria": {"registered_capital": {"min": 500, "max": 10}}},
            "criteria.registered_capital",
        ),
        ({"criteria": {"age_months": {"max": "three"}}}, "criteria.age_months"),
        ({"criteria": {"employees": {"min": 10}}}, "criteria.employees"),
        ({"criteria": {"industries": ["x"] * 51}}, "criteria.industries"),
        ({"reward": 100}, "reward"),
    ],
)
def test_a_bad_policy_is_refused_with_its_field(change, field):
    policy, problems = parse_policy({**STARTUP, **change})
    assert policy is None and [p["field"] for p in problems] == [field]


def test_a_match_is_explained_criterion_by_criterion():
    policy, _ = parse_policy(STARTUP)
    young = parse_profile(firm("E-1", size="small", dates={"registered_on": "2026-07-02"}))
    result = match(policy, young, date(2026, 12, 4))
    assert result.met
    assert [c.name for c in result.criteria] == ["valid", "district", "size", "age_months"]
    assert "registered 2026-07-02: 5 months old" in result.criteria[-1].says
    old = parse_profile(firm("E-2", district="440303", size="medium",
                             dates={"registered_on": "2019-01-01"}))  # fmt: skip
    result = match(policy, old, date(2026, 12, 4))
    assert [c.name for c in result.criteria if not c.met] == ["district", "size", "age_months"]
    assert "district 440303 is not in 440308" in [c.says for c in result.criteria]
    unknown = match(policy, parse_profile(firm("E-3")), date(2026, 12, 4))
    assert "no registration date on file (dates.registered_on)" in [
        c.says for c in unknown.criteria
    ]
    expired = parse_policy({**STARTUP, "valid_until": "2026-01-31"})[0]
    assert not match(expired, young, date(2026, 12, 4)).met


def meets(policy: Policy, doc: dict) -> bool:
    """The criteria, computed directly from the generated document (not by ``match``)."""
    age = None
    if "registered_on" in doc.get("dates", {}):
        since = date.fromisoformat(doc["dates"]["registered_on"])
        age = (TODAY.year - since.year) * 12 + TODAY.month - since.month - (TODAY.day < since.day)

    def within(bounds, value):
        return bounds is None or (value is not None and (bounds.min is None or value >= bounds.min)
                                  and (bounds.max is None or value <= bounds.max))  # fmt: skip

    return (
        ("*" in policy.districts or doc["district"] in policy.districts
         or doc["district"][:4] + "00" in policy.districts)
        and (not policy.industries or doc.get("industry") in policy.industries)
        and (not policy.sizes or doc.get("size") in policy.sizes)
        and within(policy.registered_capital, doc.get("registered_capital"))
        and within(policy.age_months, age)
        and set(policy.qualifications) <= set(doc.get("qualifications", []))
        and set(policy.permits) <= set(doc.get("permits", []))
    )  # fmt: skip


POLICIES = [
    Policy("startup", "初创", "s", "c", "w", districts=("440308",), sizes=("micro", "small"),
           age_months=Bounds(None, 36)),
    Policy("high-tech", "高新", "s", "c", "w", districts=("440300",), qualifications=("high_tech",)),
    Policy("small-loans", "贴息", "s", "c", "w", districts=("*",), sizes=("micro", "small"),
           registered_capital=Bounds(None, 1000)),
    Policy("tourism", "文旅", "s", "c", "w", districts=("440308",), industries=("tourism", "hotel")),
    Policy("food", "食品", "s", "c", "w", permits=("food_business",), registered_capital=Bounds(50, None)),
    Policy("over", "过期", "s", "c", "w", valid_until=date(2020, 1, 1)),
]  # fmt: skip


@pytest.fixture
def planner(redis_client, prefix):
    found = acting_planner(redis_client, prefix, PROJECT_ROOT / "rules", SHANGHAI)
    found.matcher.policies = POLICIES
    found.store.after_write = found.after_profiles_written
    return found


def generated(rng: random.Random, i: int) -> dict:
    doc = firm(f"E-{i:03d}", district=rng.choice(["440308", "440303", "440308"]))
    if rng.random() < 0.8:
        doc["size"] = rng.choice(["micro", "small", "medium", "large"])
    if rng.random() < 0.7:
        doc["registered_capital"] = rng.choice([0, 10, 100, 999, 1000, 1001, 5000])
    if rng.random() < 0.7:
        months = rng.choice([0, 12, 35, 36, 37, 120])
        doc["dates"] = {"registered_on": date(TODAY.year - months // 12, 1, 1).isoformat()
                        if months >= 12 else TODAY.isoformat()}  # fmt: skip
    doc["industry"] = rng.choice(["tourism", "hotel", "software", "catering"])
    doc["qualifications"] = rng.sample(["high_tech", "specialised_sme"], rng.randint(0, 2))
    doc["permits"] = rng.sample(["food_business", "outdoor_advertising"], rng.randint(0, 2))
    return doc


@ON_BOTH_REDIS
async def test_an_enterprise_gets_exactly_the_policies_it_meets_once_each(planner):
    rng = random.Random(15)
    docs = [generated(rng, i) for i in range(150)]
    for doc in docs:
        await planner.store.upsert(parse_profile(doc))
    expected = {
        (p.id, d["id"]) for d in docs for p in POLICIES if p.valid_on(TODAY) and meets(p, d)
    }
    assert len(expected) > 60 and {p for p, _ in expected} == {p.id for p in POLICIES[:5]}
    due = await planner.matcher.due_events()
    assert {(p, e) for p, e, event in due if event} == expected
    for policy_id, enterprise_id, event in due:
        assert event["id"] == f"policy:{policy_id}:{enterprise_id}"
        validate_event(event)  # an event of the catalogue's type, as published
        await planner.matcher.matches.mark_told(policy_id, enterprise_id, "2026-12-04")
    # written again, changed back and forth: nothing is told a second time
    for doc in docs:
        await planner.store.upsert(parse_profile({**doc, "size": "large"}))
        await planner.store.upsert(parse_profile(doc))
    assert await planner.matcher.due_events() == []
    # a business registers: told of what it newly meets, on the event as on its profile
    newcomer = firm("E-NEW", size="small", registered_capital=10,
                    dates={"registered_on": TODAY.isoformat()})  # fmt: skip
    await planner.store.insert_new([parse_profile(newcomer)])
    await planner.matcher.matches.redis.delete(planner.matcher.matches.queue_key())
    await planner.plan_event(validate_event(business_event("E-BR-NEW", "E-NEW")))
    assert sorted(p for p, _, e in await planner.matcher.due_events() if e) == [
        "small-loans", "startup"]  # fmt: skip


@ON_BOTH_REDIS
async def test_a_match_no_longer_met_when_it_is_told_is_dropped(planner):
    await planner.store.upsert(parse_profile(firm("E-1", size="small", registered_capital=10)))
    planner.store.after_write = None  # the change below is not seen by the matcher yet
    await planner.store.upsert(parse_profile(firm("E-1", size="large", registered_capital=10)))
    assert await planner.matcher.due_events() == [("small-loans", "E-1", None)]


@ON_BOTH_REDIS
async def test_a_policy_event_says_only_what_the_live_policy_says_whoever_published_it(planner):
    """A forged ``enterprise.policy.matched`` on life-events cannot put its own words in an SMS."""
    await planner.store.upsert(parse_profile(firm("E-1", size="small", registered_capital=10)))
    [(_, _, event)] = await planner.matcher.due_events()
    forged = {**event, "id": "policy:forged", "data": {**event["data"],
              "summary": "请点击 http://phish.example 领取补贴", "where": "加微信 fake123"}}  # fmt: skip
    plan = await planner.plan(validate_event(forged))
    [sms] = plan.notifications
    assert "phish" not in sms.content["text"] and "fake123" not in sms.content["text"]
    assert "贴息" in sms.content["text"]  # the live policy's name
    unknown = {**forged, "data": {**forged["data"], "policy_id": "no-such-policy"}}
    outcome = await planner.plan_event(validate_event(unknown))
    assert outcome.plan.notifications == [] and "no live policy" in outcome.plan.skipped[0][1]


@ON_BOTH_REDIS
async def test_a_new_policy_is_swept_over_the_enterprises_stored_before_it_once(planner):
    rng = random.Random(16)
    docs = [generated(rng, i) for i in range(120)]
    planner.store.after_write = None  # stored before any policy was live
    await planner.store.insert_new([parse_profile(d) for d in docs])
    pending = planner.matcher.to_sweep(await planner.matcher.matches.swept())
    assert [p.id for p in pending] == [p.id for p in POLICIES[:5]]  # not the expired one
    paused: list[float] = []

    async def pause(worked: float) -> None:
        paused.append(worked)

    # one pass for them all, in batches across the select's pages too, pausing between batches
    await planner.matcher.sweep(pending, batch=7, pause=pause)
    assert len(paused) >= 120 // 7 and all(w >= 0 for w in paused)
    for policy in pending:
        await planner.matcher.matches.mark_swept(policy.id, policy.version)
    expected = {
        (p.id, d["id"]) for d in docs for p in POLICIES if p.valid_on(TODAY) and meets(p, d)
    }
    due = await planner.matcher.due_events()
    assert {(p, e) for p, e, event in due if event} == expected
    assert planner.matcher.to_sweep(await planner.matcher.matches.swept()) == []
    for policy_id, enterprise_id, _ in due:
        await planner.matcher.matches.mark_told(policy_id, enterprise_id, "2026-12-04")
    # a new version is swept again; those told before are not told again
    planner.matcher.policies = [replace(POLICIES[0], version=2), *POLICIES[1:]]
    [again] = planner.matcher.to_sweep(await planner.matcher.matches.swept())
    assert again.version == 2 and await planner.matcher.sweep([again]) == 0

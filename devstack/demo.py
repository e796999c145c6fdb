"""Demo data for `lifecycle dev`: generated profiles and the seed scenarios' events: the graduate
(whose reminders the public security bureau's completion event stops), the new business (a small
one, which qualifies for the start-up rent subsidy), the gale warning; and the graduate's identity
card, which expires in 20 days (a date reminder).

Residents and enterprises are generated from a fixed seed, so every run loads the same ones.
The events get fresh ids on every run, so every run delivers anew.
"""

from __future__ import annotations

import random
import time
from datetime import date, timedelta
from typing import Any

from app.core.identifiers import uscc_problem
from app.core.timestamps import local_iso

YANTIAN, LUOHU, FUTIAN = "440308", "440303", "440304"
GRADUATE_ID = "P-000123"
NEW_ENTERPRISE_ID = "91440308MA5DN0001"  # completed with its check character below

_SURNAMES = "李王张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ["明", "强", "红", "伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟",
          "涛", "超", "霞", "平", "刚", "桂英", "建华", "晓东", "文博", "思远", "雨桐"]  # fmt: skip
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def with_check_character(first17: str) -> str:
    """Complete a 17-character credit code with its GB 32100 check character."""
    for ch in _USCC_ALPHABET:
        if uscc_problem(first17 + ch) is None:
            return first17 + ch
    raise ValueError(first17)


def _name(rng: random.Random) -> str:
    return rng.choice(_SURNAMES) + rng.choice(_GIVEN)


def _mobile(rng: random.Random) -> str:
    return (
        "+86"
        + rng.choice(["138", "139", "150", "186", "177", "199"])
        + f"{rng.randrange(10**8):08d}"
    )


def residents(count: int = 300, seed: int = 2026) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    people = []
    for i in range(1, count + 1):
        pid = f"P-{i:06d}"
        district = YANTIAN if i % 5 else rng.choice([LUOHU, FUTIAN])
        person: dict[str, Any] = {"id": pid, "kind": "person", "name": _name(rng),
                                  "mobile": _mobile(rng), "district": district,
                                  "language": "en" if i % 50 == 0 else "zh-CN", "tags": []}  # fmt: skip
        if i % 3 != 1 or pid == GRADUATE_ID:
            person["email"] = f"resident{i:06d}@example.cn"
        people.append(person)
    graduate = next(p for p in people if p["id"] == GRADUATE_ID)
    graduate.update(
        name="李明",
        district=YANTIAN,
        language="zh-CN",
        dates={"id_card_expiry": (date.today() + timedelta(days=20)).isoformat()},
    )
    return people


def enterprises(count: int = 40, seed: int = 2027) -> list[dict[str, Any]]:
    """Outdoor-advertising permit holders in Yantian, some without a safety officer; permit
    holders in other districts; and enterprises without the permit."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        district = YANTIAN if i <= 28 else rng.choice([LUOHU, FUTIAN])
        permits = ["outdoor_advertising"] if i % 3 == 0 or i > 34 else []
        contacts = [{"role": "legal_representative", "name": _name(rng), "mobile": _mobile(rng)}]
        if i % 6 != 0:  # every sixth has no safety officer: the legal representative is warned
            contacts.insert(0, {"role": "safety_officer", "name": _name(rng), "mobile": _mobile(rng),
                                "email": f"safety{i:03d}@example.cn"})  # fmt: skip
        out.append({"id": with_check_character(f"91{district}MA5DM{i:04d}"), "kind": "enterprise",
                    "name": f"深圳市盐田示范{'广告' if permits else '贸易'}有限公司{i:02d}",
                    "district": district, "language": "zh-CN",
                    "industry": "advertising" if permits else "trade", "permits": permits,
                    "contacts": contacts, "tags": []})  # fmt: skip
    new = with_check_character(NEW_ENTERPRISE_ID[:17])
    out.append({"id": new, "kind": "enterprise", "name": "深圳市盐田新开办科技有限公司",
                "district": YANTIAN, "language": "zh-CN", "industry": "technology", "permits": [],
                "size": "small", "dates": {"registered_on": date.today().isoformat()},
                "contacts": [{"role": "legal_representative", "name": "陈红", "mobile": "+8613700137000",
                              "email": "chenhong@example.cn"},
                             {"role": "finance_officer", "name": "周敏", "mobile": "+8615000150000"}],
                "tags": []})  # fmt: skip
    return out


def scenario_events(run: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(scenario title, event) for the three seed scenarios, with ids unique to this run."""
    run = run or time.strftime("%Y%m%d%H%M%S")
    new = with_check_character(NEW_ENTERPRISE_ID[:17])
    return [
        ("毕业生接收 → 户籍迁入", {
            "id": f"DEMO-{run}-GR", "type": "graduate.reception.approved",
            "occurred_at": local_iso(-3600), "source": "gd-zwfw",
            "subject": {"kind": "person", "id": GRADUATE_ID}, "district": YANTIAN,
            "data": {"approval_no": "SZJS2026070100123", "school": "华南理工大学",
                     "receiving_unit": "深圳市盐田港集团有限公司", "approved_on": "2026-07-01"}}),
        ("户籍迁入办结 → 办结通知，停止提醒", {
            "id": f"DEMO-{run}-HK", "type": "hukou.migration.completed",
            "occurred_at": local_iso(-60), "source": "sz-gaj",
            "subject": {"kind": "person", "id": GRADUATE_ID}, "district": YANTIAN,
            "data": {"approval_no": "SZJS2026070100123"}}),
        ("企业设立登记 → 后续事项", {
            "id": f"DEMO-{run}-BR", "type": "business.registered",
            "occurred_at": local_iso(-1800), "source": "sz-amr",
            "subject": {"kind": "enterprise", "id": new}, "district": YANTIAN,
            "data": {"name": "深圳市盐田新开办科技有限公司", "enterprise_type": "有限责任公司",
                     "industry": "technology", "registered_on": "2026-07-02"}}),
        ("大风预警 → 户外广告企业", {
            "id": f"DEMO-{run}-WX", "type": "weather.warning.issued",
            "occurred_at": local_iso(-600), "source": "sz-meteo", "district": YANTIAN,
            "data": {"warning_id": f"44030841600000_{run}", "kind": "gale", "level": "yellow",
                     "areas": [YANTIAN], "headline": "盐田区大风黄色预警",
                     "instruction": "预计未来24小时内盐田区将出现8级以上大风。",
                     "expires_at": local_iso(86400)}}),
    ]  # fmt: skip

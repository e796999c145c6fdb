"""CAP 1.2 parsing and mapping, on fixtures written here (modelled on CMA/GB/T 35965 alerts)."""

from datetime import UTC, datetime

import pytest

from app.intake.cap import CapRejected, alert_events, parse_cap, to_events

NOW = datetime(2026, 8, 12, 7, 0, tzinfo=UTC)


def cap(*, identifier="44030841600000_20260812140000", msg_type="Alert", status="Actual", references="",
        infos=None, sender="shenzhen_meteorological_observatory", namespace="urn:oasis:names:tc:emergency:cap:1.2",
        header_extra="", sent="2026-08-12T14:00:00+08:00") -> str:  # fmt: skip
    if infos is None:
        infos = [info()]
    refs = f"<references>{references}</references>" if references else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="{namespace}"><identifier>{identifier}</identifier>'
            f"<sender>{sender}</sender><sent>{sent}</sent><status>{status}</status>"
            f"<msgType>{msg_type}</msgType><scope>Public</scope>{refs}{header_extra}{''.join(infos)}</alert>")  # fmt: skip


def info(*, language="zh-CN", event="大风", headline="盐田区气象台发布大风黄色预警信号", severity="Moderate",
         expires="2026-08-13T14:00:00+08:00", area='<geocode><valueName>GB/T 2260</valueName><value>440308</value></geocode>',
         instruction="请加固户外广告牌等设施。") -> str:  # fmt: skip
    return (f"<info><language>{language}</language><category>Met</category><event>{event}</event>"
            f"<urgency>Expected</urgency><severity>{severity}</severity><certainty>Likely</certainty>"
            f"<expires>{expires}</expires><headline>{headline}</headline>"
            f"<description>预计<b>未来24小时</b>内有8级大风。</description><instruction>{instruction}</instruction>"
            f"<area><areaDesc>盐田区</areaDesc>{area}</area></info>")  # fmt: skip


def events(text: str | bytes):
    return alert_events(text.encode("utf-8") if isinstance(text, str) else text, now=NOW)


def refused(text: str | bytes) -> str:
    with pytest.raises(CapRejected) as caught:
        events(text)
    return caught.value.reason


def test_a_yantian_gale_warning_by_division_code():
    [event] = events(cap())
    assert event.type == "weather.warning.issued"
    assert event.id == "CAP-44030841600000_20260812140000-Alert"
    data = event.data
    assert (data["warning_id"], data["kind"], data["level"], data["areas"]) == (
        "44030841600000_20260812140000", "gale", "yellow", ["440308"])  # fmt: skip
    assert data["headline"] == "盐田区气象台发布大风黄色预警信号"
    assert data["expires_at"] == "2026-08-13T14:00:00+08:00"


def test_cma_twelve_digit_geocodes_become_division_codes_and_foreign_codes_are_left_out():
    area = ('<geocode><valueName>CPEAS Geographic Code</valueName><value>440308000000</value></geocode>'
            '<geocode><valueName>FIPS6</valueName><value>006003</value></geocode>')  # fmt: skip
    [event] = events(cap(infos=[info(area=area)]))
    assert event.data["areas"] == ["440308"]


def test_the_zh_cn_block_is_chosen_and_other_languages_kept():
    english = info(
        language="en-US",
        event="Gale",
        headline="Gale Warning (Yellow)",
        instruction="Secure billboards.",
    )
    [event] = events(cap(infos=[english, info()]))
    assert event.data["headline"] == "盐田区气象台发布大风黄色预警信号"
    assert event.data["translations"] == {
        "en-US": {"headline": "Gale Warning (Yellow)", "instruction": "Secure billboards."}
    }


def test_the_level_comes_from_the_colour_word_else_from_severity():
    [red] = events(cap(infos=[info(headline="暴雨红色预警", event="暴雨")]))
    [severe] = events(
        cap(infos=[info(headline="Rain warning", event="Heavy rain", severity="Severe")])
    )
    assert (red.data["kind"], red.data["level"], severe.data["kind"], severe.data["level"]) == (
        "rainstorm", "red", "rainstorm", "orange")  # fmt: skip


def test_a_polygon_and_a_circle_are_kept():
    area = "<polygon>22.55,114.22 22.60,114.22 22.60,114.30 22.55,114.30 22.55,114.22</polygon><circle>22.58,114.26 5</circle>"
    [event] = events(cap(infos=[info(area=area)]))
    assert event.data["areas"] == []
    assert event.data["polygons"] == [
        [[22.55, 114.22], [22.6, 114.22], [22.6, 114.3], [22.55, 114.3], [22.55, 114.22]]
    ]
    assert event.data["circles"] == [{"lat": 22.58, "lon": 114.26, "radius_km": 5.0}]


def test_an_update_references_the_earlier_warning():
    update = cap(identifier="44030841600000_20260812180000", msg_type="Update",
                 references="shenzhen_meteorological_observatory,44030841600000_20260812140000,2026-08-12T14:00:00+08:00",
                 infos=[info(headline="盐田区大风橙色预警信号", severity="Severe")])  # fmt: skip
    [event] = events(update)
    assert (event.type, event.data["level"], event.data["references"]) == (
        "weather.warning.updated", "orange", ["44030841600000_20260812140000"])  # fmt: skip


def test_a_cancel_without_info_is_an_all_clear_event():
    cancel = cap(identifier="44030841600000_20260812200000", msg_type="Cancel", infos=[],
                 references="shenzhen_meteorological_observatory,44030841600000_20260812140000,2026-08-12T14:00:00+08:00")  # fmt: skip
    [event] = events(cancel)
    assert (event.type, event.data["references"]) == (
        "weather.warning.cancelled",
        ["44030841600000_20260812140000"],
    )


def test_a_cancel_of_more_than_a_hundred_warnings_is_refused_with_the_reason():
    triples = " ".join(f"smo,W{i},2026-08-12T14:00:00+08:00" for i in range(101))
    reason = refused(cap(msg_type="Cancel", infos=[], references=triples))
    assert reason.startswith("the alert does not make a valid event: weather.warning.cancelled: "
                             "data.references:")  # fmt: skip


def test_an_expired_alert_is_not_sent():
    assert "expired" in refused(cap(infos=[info(expires="2026-08-12T10:00:00+08:00")]))


def test_an_xxe_attempt_is_refused():
    hostile = ('<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
               + cap(identifier="&xxe;").split("\n", 1)[1])  # fmt: skip
    assert "DOCTYPE" in refused(hostile)


def test_entity_expansion_is_refused():
    bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
    assert "DOCTYPE" in refused(bomb)


def test_a_wrong_namespace_is_refused():
    assert "not a CAP 1.2 alert" in refused(
        cap(namespace="urn:oasis:names:tc:emergency:alerts:1.2")
    )


def test_cap_1_1_is_refused():
    assert "cap:1.1" in refused(cap(namespace="urn:oasis:names:tc:emergency:cap:1.1"))


def test_a_missing_element_is_named():
    assert refused(cap(sender="")) == "required element missing or empty: sender"
    no_severity = info().replace("<severity>Moderate</severity>", "")
    assert (
        refused(cap(infos=[no_severity])) == "info 1: required element missing or empty: severity"
    )


def test_exercises_and_tests_are_not_sent():
    assert refused(cap(status="Exercise")) == "status is 'Exercise'; only Actual alerts are sent"


def test_malformed_xml_is_refused():
    assert "not well-formed" in refused(cap()[:-20])


def test_a_bom_and_a_declared_latin1_encoding_are_accepted():
    with_bom = b"\xef\xbb\xbf" + cap().encode("utf-8")
    assert events(with_bom)[0].data["areas"] == ["440308"]
    latin = cap(
        infos=[
            info(language="es-419", event="Viento", headline="Aviso de viento fuerte en Yucatán")
        ]
    )
    for chinese, spanish in (("预计<b>未来24小时</b>内有8级大风。", "Rachas fuertes."), ("请加固户外广告牌等设施。", "Asegure anuncios."),
                             ("盐田区", "Mérida")):  # fmt: skip
        latin = latin.replace(chinese, spanish)
    latin_bytes = latin.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("latin-1")
    assert events(latin_bytes)[0].data["headline"] == "Aviso de viento fuerte en Yucatán"


def test_parse_cap_keeps_mixed_content_text():
    assert parse_cap(cap().encode()).infos[0].description == "预计未来24小时内有8级大风。"


def test_to_events_needs_an_info_for_an_alert():
    alert = parse_cap(cap(infos=[]).encode())
    with pytest.raises(CapRejected, match="no info"):
        to_events(alert, now=NOW)

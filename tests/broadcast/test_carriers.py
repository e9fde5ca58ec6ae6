"""The carriers file: a good file loads, every kind of mistake is refused naming where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.base.errors import ConfigError
from alerting.base.models.senders import SenderKind
from broadcast.carriers import BindMode, load_carriers, parse_carriers, source_ton_npi

ENV = {"SIRENA_CARRIER_ALPHA_PASSWORD": "pw-a", "SIRENA_CARRIER_BETA_PASSWORD": "pw-b"}
DEMO = Path(__file__).resolve().parents[2] / "broadcast" / "carriers.demo.toml"

MINIMAL = """
[senders.SC]
kind = "short"
address = "4242"

[carriers.alpha]
host = "127.0.0.1"
port = 2775
system_id = "alpha"
password_env = "SIRENA_CARRIER_ALPHA_PASSWORD"
senders = ["SC"]
"""


def refused(text: str, env: dict[str, str] = ENV) -> str:
    with pytest.raises(ConfigError) as info:
        parse_carriers(text, env, source="carriers.toml")
    return info.value.message


def test_demo_file_has_two_test_carriers_and_four_senders():
    config = load_carriers(DEMO, ENV)
    alpha, beta = config.carrier("alpha"), config.carrier("beta")
    assert (alpha.port, beta.port) == (2775, 2776)
    assert alpha.test and beta.test and alpha.binds == beta.binds == 2
    assert alpha.password.reveal() == "pw-a" and "pw-a" not in repr(alpha)
    assert config.senders["BOMBEROS"].kind is SenderKind.SHARED
    assert config.senders["BOMBEROS"].keyword == "BOMBEROS"
    assert [c.name for c in config.carriers_for("BOMBEROS")] == ["alpha"]
    assert [c.name for c in config.carriers_for("SIRENA-LN")] == ["beta"]
    long_number = config.senders["SIRENA-LN"]
    assert (long_number.address, long_number.daily_cap, long_number.tps) == ("56900000001", 10000, 1.0)
    assert {c.name for c in config.carriers_for("SIRENA-SC")} == {"alpha", "beta"}


def test_demo_file_holds_no_literal_password():
    text = DEMO.read_text()
    assert "password =" not in text and "password=" not in text


def test_defaults_apply_when_keys_are_absent():
    carrier = parse_carriers(MINIMAL, ENV).carrier("alpha")
    assert carrier.bind_mode is BindMode.TRANSCEIVER
    assert (carrier.binds, carrier.window, carrier.data_coding_gsm7, carrier.test) == (1, 10, 0, False)
    assert carrier.validity_period is None


def test_ton_npi_follow_sender_kind():
    config = load_carriers(DEMO, ENV)
    alpha = config.carrier("alpha")
    assert source_ton_npi(alpha, config.senders["SIRENA"]) == (5, 0)
    assert source_ton_npi(alpha, config.senders["SIRENA-SC"]) == (3, 0)
    assert source_ton_npi(alpha, config.senders["SIRENA-LN"]) == (1, 1)


def test_validity_period_is_smpp_relative_time():
    text = MINIMAL.replace('senders = ["SC"]', 'senders = ["SC"]\nvalidity_period_s = 93784')
    assert parse_carriers(text, ENV).carrier("alpha").validity_period == "000001020304000R"


def test_syntax_error_names_the_line():
    message = refused(MINIMAL + "\nbinds = \n")
    assert "carriers.toml" in message and "line 13" in message


def test_unknown_key_names_table_path_and_line():
    message = refused(MINIMAL + "bindz = 2\n")
    assert "carriers.alpha.bindz: unknown key" in message
    assert "carriers.toml:12" in message


def test_unknown_top_level_table_is_refused():
    assert "carrier: unknown key" in refused(MINIMAL + "[carrier.beta]\nhost = 'x'\n")


def test_missing_password_variable_is_named():
    message = refused(MINIMAL, env={})
    assert "SIRENA_CARRIER_ALPHA_PASSWORD is not set" in message
    assert "carriers.alpha.password_env" in message


def test_literal_password_key_is_refused():
    assert "carriers.alpha.password: unknown key" in refused(MINIMAL + 'password = "secret"\n')


def test_duplicate_sender_address_is_named():
    text = MINIMAL + '\n[senders.OTHER]\nkind = "short"\naddress = "4242"\n'
    message = refused(text)
    assert "senders.OTHER" in message and "duplicate sender" in message and '"SC"' in message


def test_sender_listed_twice_by_a_carrier_is_named():
    message = refused(MINIMAL.replace('senders = ["SC"]', 'senders = ["SC", "SC"]'))
    assert 'carriers.alpha.senders: duplicate sender "SC"' in message


def test_shared_codes_may_share_an_address_with_different_keywords():
    text = MINIMAL + (
        '[senders.B]\nkind = "shared"\naddress = "5555"\nkeyword = "bomberos"\n'
        '[senders.C]\nkind = "shared"\naddress = "5555"\nkeyword = "CRUZROJA"\n'
    )
    config = parse_carriers(text, ENV)
    assert config.senders["B"].keyword == "BOMBEROS"


def test_shared_code_without_keyword_is_refused():
    text = MINIMAL + '[senders.B]\nkind = "shared"\naddress = "5555"\n'
    assert "senders.B.keyword" in refused(text)


def test_the_default_sender_is_a_dedicated_code_named_in_the_file_or_the_first_short_code():
    assert load_carriers(DEMO, ENV).default_sender == "SIRENA-SC"
    shared_first = '[senders.A-SHARED]\nkind = "shared"\naddress = "5555"\nkeyword = "BOMBEROS"\n' + MINIMAL
    assert parse_carriers(shared_first, ENV).default_sender == "SC"  # never the shared code, whatever the order
    long_named = MINIMAL + '[senders.LN]\nkind = "long"\naddress = "+56900000001"\n'
    assert parse_carriers('default_sender = "LN"\n' + long_named, ENV).default_sender == "LN"


@pytest.mark.parametrize(("sender", "expected"), [
    ("B", "default_sender: B is a shared short code: replies to it are lost without its keyword BOMBEROS"),
    ("NAME", "default_sender: NAME is an alphanumeric sender: nobody can reply to it"),
    ("NOPE", "default_sender: expected the name of a [senders.NAME] table, got 'NOPE'"),
])
def test_a_default_sender_nobody_can_reply_to_is_refused_at_start(sender: str, expected: str):
    text = (f'default_sender = "{sender}"\n' + MINIMAL + '[senders.B]\nkind = "shared"\naddress = "5555"\n'
            'keyword = "BOMBEROS"\n[senders.NAME]\nkind = "alphanumeric"\naddress = "SIRENA"\n')
    assert expected in refused(text)


def test_unknown_sender_in_carrier_list_is_named():
    assert 'unknown sender "NOPE"' in refused(MINIMAL.replace('["SC"]', '["SC", "NOPE"]'))


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        ("port = 2775", "port = 70000", "carriers.alpha.port: expected 1-65535"),
        ("port = 2775", 'port = "2775"', "carriers.alpha.port: expected int"),
        ('system_id = "alpha"', 'system_id = "alpha"\nwindow = 0', "carriers.alpha.window: expected 1 to 1000"),
        ('system_id = "alpha"', 'system_id = "alpha"\ntest = 1', "carriers.alpha.test: expected bool"),
        ('system_id = "alpha"', 'system_id = "alpha"\nbinds = true', "carriers.alpha.binds: expected int"),
        ('system_id = "alpha"', 'system_id = "alpha"\ndata_coding_gsm7 = 8', "data_coding_gsm7: expected 0 to 1"),
        ('system_id = "alpha"', 'system_id = "alpha"\nbind_mode = "rx"', "carriers.alpha.bind_mode"),
        ('address = "4242"', 'address = "42a"', "senders.SC.address"),
        ('kind = "short"', 'kind = "premium"', "senders.SC.kind"),
        ('host = "127.0.0.1"\n', "", "carriers.alpha.host: required"),
    ],
)
def test_bad_values_are_refused_naming_the_key(replace: str, by: str, expected: str):
    assert expected in refused(MINIMAL.replace(replace, by, 1))


def test_long_number_must_be_e164_and_only_it_has_a_cap():
    long_bad = MINIMAL + '[senders.L]\nkind = "long"\naddress = "56900000001"\n'
    assert "senders.L.address" in refused(long_bad)
    capped_short = MINIMAL.replace('address = "4242"', 'address = "4242"\ndaily_cap = 10')
    assert "senders.SC.daily_cap: only long numbers" in refused(capped_short)


def test_alphanumeric_sender_is_at_most_eleven_characters():
    text = MINIMAL + '[senders.A]\nkind = "alphanumeric"\naddress = "TOO-LONG-NAME"\n'
    assert "senders.A.address" in refused(text)


def test_unknown_carrier_lookup_names_the_known_ones():
    with pytest.raises(ConfigError, match='unknown carrier "gamma" \\(known: alpha\\)'):
        parse_carriers(MINIMAL, ENV).carrier("gamma")


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_carriers(tmp_path / "nope.toml", ENV)


def test_an_unknown_receipt_id_style_is_refused_at_start_naming_the_key():
    from tests.conftest import carriers_toml, sim_env

    bad = carriers_toml({"alpha": 2775}).replace('test = true', 'test = true\nreceipt_id_style = "base64"')
    with pytest.raises(ConfigError, match=r"carriers\.alpha\.receipt_id_style"):
        parse_carriers(bad, sim_env())


@pytest.mark.parametrize(("password", "why"), [
    ("twelve-chars", "is 12 characters long; SMPP allows at most 8"),
    ("contraseña", "holds characters other than printable ASCII"),
    ("tab\there", "holds characters other than printable ASCII"),
])
def test_a_password_smpp_cannot_carry_is_refused_at_start_naming_the_variable(password: str, why: str):
    message = refused(MINIMAL, {"SIRENA_CARRIER_ALPHA_PASSWORD": password})
    assert f"carriers.alpha.password_env: SIRENA_CARRIER_ALPHA_PASSWORD {why}" in message


@pytest.mark.parametrize("password", ["", "12345678", "a-b_c.d!", "123456789", "ñandú", "x\x00y", "  spaces"])
def test_the_gateway_and_the_simulator_refuse_the_same_passwords(password: str):
    from broadcast.carriers import smpp_password_problem
    from smsc_sim import pdu

    assert smpp_password_problem(password) == pdu.password_problem(password)

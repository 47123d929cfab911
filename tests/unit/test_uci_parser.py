"""The UCI text parser: libuci's quoting rules, and the strictness we add."""

import pytest

from haig.config.uci import UciOption, UciSection, UciSyntaxError, dump_uci, parse_uci, quote


def one(text):
    (sec,) = parse_uci(text)
    return sec


def value(text_value):
    return one(f"config t 's'\n\toption v {text_value}\n").get("v")


def test_sections_options_lists_in_order_with_lines():
    secs = parse_uci(
        "# comment\n"
        "config haig 'main'\n"
        "\toption role 'gateway'\n"
        "\n"
        "config uplink wan\n"
        "\tlist x 'a'\n"
        "\tlist x \"b\"\n"
        "\toption metric 1\n"
    )
    assert [(s.type, s.name, s.line) for s in secs] == [("haig", "main", 2), ("uplink", "wan", 5)]
    assert secs[0].options["role"] == UciOption("role", "gateway", 3)
    assert secs[1].get("x") == ["a", "b"]
    assert secs[1].options["x"].line == 6
    assert list(secs[1].options) == ["x", "metric"]


def test_anonymous_section_has_no_name():
    sec = one("config service\n\toption listen '1.2.3.4:5'\n")
    assert sec.name is None and sec.label() == "service (unnamed, line 1)"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("plain", "plain"),
        ("'with space'", "with space"),
        ('"with space"', "with space"),
        ("''", ""),
        ('""', ""),
        ("'a'\\''b'", "a'b"),  # how uci export writes a single quote
        ("'a'\"b\"c", "abc"),  # parts of one word concatenate
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ("'no \\ escapes'", "no \\ escapes"),
        ("a\\ b", "a b"),  # bare backslash takes the next character
        ("'#not a comment'", "#not a comment"),
        ("'x' # trailing comment", "x"),
        ("val#comment", "val"),  # libuci: bare # ends the word and the line
        ("'tab\there'", "tab\there"),
    ],
)
def test_quoting_rules(raw, expected):
    assert value(raw) == expected


def test_backslash_newline_joins_lines_and_line_numbers_stay_right():
    secs = parse_uci("config t 's'\n\toption v 'ab'\\\n'cd'\n\toption w \"x\\\ny\"\n\toption z 1\n")
    s = secs[0]
    assert s.get("v") == "abcd" and s.get("w") == "xy"
    assert s.options["z"].line == 6  # two continuations above it


def test_semicolon_separates_statements_and_crlf_is_accepted():
    s = one("config t 's'; option a 1; option b '2'\r\n\toption c 3\r\n")
    assert (s.get("a"), s.get("b"), s.get("c")) == ("1", "2", "3")


def test_abbreviated_commands_and_package_line():
    secs = parse_uci("package haig\nc t 's'\no a 1\nl b 2\n")
    assert secs[0].get("a") == "1" and secs[0].get("b") == ["2"]


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("config t 's'\n\toption v 'open\n", 2, "unterminated '"),
        ('config t \'s\'\n\toption v "open\n', 2, 'unterminated "'),
        ("config t 's'\n\toption v\n", 2, "has no value"),
        ("config t 's'\n\toption v a b\n", 2, "more than one value"),
        ("config t 's' extra\n", 1, "at most one name"),
        ("config\n", 1, "needs a type"),
        ("option v 1\n", 1, "before the first config line"),
        ("config t 'bad-name'\n", 1, "invalid section name 'bad-name'"),
        ("config t 's'\n\toption bad.name 1\n", 2, "invalid option name 'bad.name'"),
        ("config t 's'\nsetting x 1\n", 2, "unknown statement 'setting'"),
        ("config t 's'\n\toption v 1\n\toption v 2\n", 3, "option 'v' is set twice in t 's' (lines 2 and 3)"),
        ("config t 's'\n\toption v 1\n\tlist v 2\n", 3, "both with option and list"),
        ("config a 'x'\nconfig b 'x'\n", 2, "section name 'x' is used twice (lines 1 and 2)"),
    ],
)
def test_syntax_errors_carry_line_numbers(text, line, fragment):
    with pytest.raises(UciSyntaxError) as ei:
        parse_uci(text, source="f")
    lines = [ln for ln, _ in ei.value.problems]
    assert line in lines
    assert fragment in str(ei.value)
    assert f"f:{line}:" in str(ei.value)


def test_all_syntax_errors_are_collected_not_just_the_first():
    text = "config t 's'\n\toption a 'x\n\toption b ok\n\toption c \"y\n\tbogus\n"
    with pytest.raises(UciSyntaxError) as ei:
        parse_uci(text)
    assert [ln for ln, _ in ei.value.problems] == [2, 4, 5]


def test_a_bad_config_line_does_not_cascade_into_its_options():
    with pytest.raises(UciSyntaxError) as ei:
        parse_uci("config t 'bad-name'\n\toption a 1\n\toption b 2\n")
    assert len(ei.value.problems) == 1


def test_dump_round_trips_awkward_values():
    secs = [
        UciSection("haig", "main", 1, {"key": UciOption("key", "it's \"q\" \\ # ;", 2)}),
        UciSection("service", None, 3, {"l": UciOption("l", ["a b", "", "'"], 4)}),
    ]
    again = parse_uci(dump_uci(secs))
    assert [(s.type, s.name, {k: o.value for k, o in s.options.items()}) for s in again] == [
        ("haig", "main", {"key": "it's \"q\" \\ # ;"}),
        ("service", None, {"l": ["a b", "", "'"]}),
    ]
    assert quote("a'b") == "'a'\\''b'"


def test_reads_what_uci_export_writes():
    # libuci's export quotes everything, types and option names included
    s = one("package 'haig'\n\nconfig 'uplink' 'wan'\n\toption 'metric' '1'\n\tlist 'x' 'it'\\''s'\n")
    assert (s.type, s.name, s.get("metric"), s.get("x")) == ("uplink", "wan", "1", ["it's"])

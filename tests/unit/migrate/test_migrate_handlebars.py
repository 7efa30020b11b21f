"""Handlebars -> Jinja2: each construct translated and rendered by Kizuna's renderer."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from migrate_helpers import context, render_html, render_text

from kizuna_tools.migrate.handlebars import Block, HandlebarsError, Mustache, Path, Text, parse
from kizuna_tools.migrate.templates import (
    Kind,
    Mode,
    TemplateResult,
    translate_handlebars,
)


def translate(
    source: str, *, mode: Mode = "text", kind: Kind = "sms", defaults: dict[str, str] | None = None
) -> tuple[str, TemplateResult]:
    result = TemplateResult("t_en", kind, "t", "en", "name")
    return (
        translate_handlebars(
            source, part="sms.txt", kind=kind, mode=mode, result=result, defaults=defaults
        ),
        result,
    )


def text(source: str, defaults: dict[str, str] | None = None, **ctx: Any) -> str:
    """``source`` translated and rendered for a customer of the given data, every attribute
    the template reads declared (None when not given)."""
    jinja, result = translate(source, defaults=defaults)
    return render_text(jinja, context(declared=result.attributes, **ctx))


# --- the parser --------------------------------------------------------------------------------
def test_parser_reads_mustaches_blocks_and_paths() -> None:
    tree = parse("Hi {{User.UserAttributes.[First Name]}}{{#if a}}x{{else}}y{{/if}}")
    assert isinstance(tree[0], Text) and tree[0].value == "Hi "
    assert isinstance(tree[1], Mustache)
    assert tree[1].call.head == Path(
        ("User", "UserAttributes", "First Name"), original="User.UserAttributes.[First Name]"
    )
    block = tree[2]
    assert isinstance(block, Block) and block.call.helper == "if"
    assert block.program == [Text("x")] and block.inverse == [Text("y")]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{#if a}}open", "never closed"),
        ("{{#if a}}x{{/each}}", "closed by"),
        ("x{{/if}}", "without an opening block"),
        ("{{name", "unclosed tag"),
        ("{{!-- never ends", "unclosed comment"),
        ("{{{{raw}}}} x {{{{/raw}}}}", "raw blocks"),
        ("{{#if a}}x{{else}}y{{else}}z{{/if}}", "a second"),
    ],
)
def test_parser_refuses_what_handlebars_refuses(source: str, message: str) -> None:
    with pytest.raises(HandlebarsError, match=message):
        parse(source)


def test_an_unreadable_template_becomes_one_todo_and_is_listed() -> None:
    jinja, result = translate("Hi {{#if a}}open")
    assert jinja.startswith("{# TODO(migrate): not valid Handlebars")
    assert [t.reason.split(":")[0] for t in result.todos] == ["not valid Handlebars"]


def test_an_unreadable_part_renders_empty_so_kizuna_refuses_it() -> None:
    from kizuna.delivery.templates import RenderError

    jinja, _ = translate("Hi {{#if a}}open")
    with pytest.raises(RenderError, match="rendered empty"):
        render_text(jinja, context())


# --- variables ---------------------------------------------------------------------------------
def test_user_names_are_the_customers_names() -> None:
    source = "Hi {{User.UserAttributes.FirstName}} {{Attributes.LastName}}"
    jinja, result = translate(source)
    assert "customer.first_name" in jinja and "customer.last_name" in jinja
    assert result.attributes == {}
    assert text(source) == "Hi Hanako Yamada"
    # Pinpoint prints nothing for a value the recipient lacks
    assert text(source, first_name=None, last_name=None) == "Hi"


def test_custom_attributes_and_metrics_are_customer_attributes() -> None:
    source = "{{Attributes.FavoriteStore}}/{{User.UserAttributes.MembershipTier}}/{{Metrics.OrdersLast90Days}}"
    jinja, result = translate(source)
    assert "customer.attributes.favorite_store" in jinja
    assert result.attributes == {
        "favorite_store": "Attributes.FavoriteStore",
        "membership_tier": "User.UserAttributes.MembershipTier",
        "orders_last90_days": "Metrics.OrdersLast90Days",
    }
    attrs = {"favorite_store": "Ginza", "membership_tier": "Gold", "orders_last90_days": Decimal(0)}
    assert text(source, attributes=attrs) == "Ginza/Gold/0"  # a 0 metric prints 0
    assert text(source) == "//"  # none of them: nothing, as Pinpoint


def test_the_city_and_the_country_are_the_declared_location_attributes() -> None:
    # the migration declares city and country from the endpoints' Location
    source = "{{Location.City}}, {{Location.Country}}"
    _, result = translate(source)
    assert not result.todos
    assert result.attributes == {"city": "Location.City", "country": "Location.Country"}
    assert text(source, attributes={"city": "Shinjuku", "country": "JP"}) == "Shinjuku, JP"
    assert text(source) == ","  # a customer without them: nothing, as Pinpoint


def test_user_id_locale_and_time_zone() -> None:
    source = "{{User.UserId}} {{Demographic.Locale}} {{Demographic.Timezone}}"
    assert text(source) == "sample en Europe/London"


def test_default_substitutions_fill_missing_values() -> None:
    defaults = {"User.UserAttributes.FirstName": "there", "Attributes.City": "your city"}
    source = "Hi {{User.UserAttributes.FirstName}} in {{Attributes.City}}"
    assert text(source, defaults, first_name=None) == "Hi there in your city"
    assert text(source, defaults, attributes={"city": "Osaka"}) == "Hi Hanako in Osaka"


def test_a_substitution_only_variable_prints_its_default() -> None:
    jinja, result = translate("Code: {{PromoCode}}", defaults={"PromoCode": "TEA10"})
    assert render_text(jinja, context()) == "Code: TEA10"
    assert not result.todos


def test_channel_type_is_the_templates_own_channel() -> None:
    assert text("via {{ChannelType}}") == "via SMS"


@pytest.mark.parametrize(
    ("variable", "reason"),
    [
        ("{{Address}}", "address"),
        ("{{Id}}", "endpoint id"),
        ("{{Location.PostalCode}}", "location data other than the city and the country"),
        ("{{Demographic.Platform}}", "device data"),
        ("{{OptOut}}", "opt-out"),
        ("{{Recommendations.Title}}", "recommender"),
        ("{{Attributes.A.B}}", "a path Pinpoint does not define"),
        ("{{Nickname}}", "unknown variable"),
    ],
)
def test_what_kizuna_does_not_offer_is_a_todo(variable: str, reason: str) -> None:
    jinja, result = translate(f"Hello {variable}!")
    assert "{# TODO(migrate): " in jinja and variable in jinja
    assert len(result.todos) == 1 and reason in result.todos[0].reason
    assert result.todos[0].line == 1 and result.todos[0].source == variable
    assert render_text(jinja, context()) == "Hello !"


# --- escaping ----------------------------------------------------------------------------------
def test_html_escapes_double_stash_and_keeps_triple_stash_raw_as_a_risk() -> None:
    source = "<p>{{Attributes.Note}}</p><div>{{{Attributes.Banner}}}</div><i>{{&Attributes.Em}}</i>"
    jinja, result = translate(source, mode="html", kind="email")
    banner = "customer.attributes.banner"
    assert f'else {banner}) if {banner} is not none else "")) | safe' in jinja
    assert 'note is not none else "") }}' in jinja  # no | safe on an escaped value
    assert result.raw_html == ["{{{Attributes.Banner}}}", "{{&Attributes.Em}}"]
    html = render_html(
        jinja, context(attributes={"note": "<b>&", "banner": "<b>sale</b>", "em": "<i>"})
    )
    assert html == "<p>&lt;b&gt;&amp;</p><div><b>sale</b></div><i><i></i>"


def test_text_parts_print_values_as_they_are() -> None:
    source = "{{Attributes.Note}} {{{Attributes.Note}}}"
    jinja, result = translate(source)
    assert "safe" not in jinja and not result.raw_html
    assert text(source, attributes={"note": "<b>&"}) == "<b>& <b>&"


def test_literal_text_that_looks_like_jinja_stays_literal() -> None:
    # a Handlebars string literal '{{' prints braces; \\{{ is Handlebars' own escape
    source = "{% raw %} {# x #} {{'{{'}} \\{{User.UserId}} done"
    jinja, _ = translate(source)
    assert render_text(jinja, context()) == "{% raw %} {# x #} {{ {{User.UserId}} done"


# --- blocks ------------------------------------------------------------------------------------
def test_if_else_if_else() -> None:
    source = (
        "{{#if Attributes.Tier}}tier {{Attributes.Tier}}"
        "{{else if (gt Metrics.Points 100)}}many points"
        "{{else}}welcome{{/if}}"
    )
    jinja, _ = translate(source)
    assert "{% elif" in jinja
    assert text(source, attributes={"tier": "Gold"}) == "tier Gold"
    assert text(source, attributes={"points": Decimal(150)}) == "many points"
    assert text(source, attributes={"points": Decimal(50)}) == "welcome"
    assert text(source) == "welcome"


def test_unless_and_inverse_sections() -> None:
    source = "{{#unless Attributes.OptIn}}join{{else}}thanks{{/unless}}|{{^Attributes.OptIn}}no{{/Attributes.OptIn}}"
    assert text(source, attributes={"opt_in": True}) == "thanks|"
    assert text(source, attributes={"opt_in": False}) == "join|no"
    assert text(source) == "join|no"


def test_each_with_this_index_first_last_and_else() -> None:
    source = (
        "{{#each Attributes.Interests}}{{#if @first}}[{{/if}}{{@index}}:{{this}}"
        "{{#if @last}}]{{else}},{{/if}}{{else}}none{{/each}}"
    )
    assert text(source, attributes={"interests": ["tea", "ware"]}) == "[0:tea,1:ware]"
    assert text(source, attributes={"interests": []}) == "none"
    assert text(source) == "none"


def test_a_list_attribute_prints_its_items_joined_by_commas() -> None:
    # Handlebars.js prints an array as Array.prototype.toString does: "sweets,tea"
    source = "New {{Attributes.Interests}} arrivals"
    assert text(source, attributes={"interests": ["sweets", "tea"]}) == "New sweets,tea arrivals"
    assert text(source, attributes={"interests": ("tea",)}) == "New tea arrivals"
    assert text(source) == "New  arrivals"  # none: nothing, as Pinpoint
    defaults = {"Attributes.Interests": "tea"}
    assert text(source, defaults) == "New tea arrivals"
    html = render_html(
        translate(source, mode="html", kind="email")[0],
        context(attributes={"interests": ["<b>", "tea"]}),
    )
    assert html == "New &lt;b&gt;,tea arrivals"  # each item escaped in HTML


def test_each_over_a_one_value_attribute_is_one_item_never_its_letters() -> None:
    # Given Pinpoint's ["tea"], migrated as the string "tea" (a customer with one value),
    # or ["true"] migrated as a boolean
    source = "Picks:{{#each Attributes.Interests}} [{{this}}]{{else}} none{{/each}}"
    # Then #each gives the one item, as Pinpoint's one-item array did
    assert text(source, attributes={"interests": "tea"}) == "Picks: [tea]"
    assert text(source, attributes={"interests": True}) == "Picks: [true]"
    assert text(source, attributes={"interests": ["tea", "cups"]}) == "Picks: [tea] [cups]"
    assert text(source) == "Picks: none"
    # and a metric (a number in Pinpoint) or a location is not a list: a TODO
    for path in ("Metrics.Spend", "Location.City"):
        _, result = translate(f"{{{{#each {path}}}}}x{{{{/each}}}}")
        assert [t.reason for t in result.todos] == [f"{path} is not a list"]


def test_a_typed_attribute_compares_and_prints_as_the_text_pinpoint_had() -> None:
    # Given "true"/"false" and "10"/"2" migrated as a boolean and a number
    source = (
        '{{#eq Attributes.Vip "true"}}VIP{{else}}regular{{/eq}} ({{Attributes.Vip}})'
        '{{#if (gte Attributes.Level "5")}} 5+{{/if}}{{#if (ne Attributes.Level "10")}} not10{{/if}}'
    )
    # Then they compare as Pinpoint compared the strings, and print as Pinpoint stored them
    vip = {"vip": True, "level": Decimal(10)}
    assert text(source, attributes=vip) == "VIP (true)"  # "10" >= "5" is false for strings too
    regular = {"vip": False, "level": Decimal(2)}
    assert text(source, attributes=regular) == "regular (false) not10"
    assert text(source) == "regular () not10"  # no value: as Pinpoint, nothing matches


def test_parent_paths_inside_each() -> None:
    source = (
        "{{#each Attributes.Interests}}{{this}} for {{../User.UserAttributes.FirstName}};{{/each}}"
    )
    assert text(source, attributes={"interests": ["tea"]}) == "tea for Hanako;"


def test_nested_each_gets_its_own_variable() -> None:
    source = "{{#each Attributes.A}}{{#each ../Attributes.B}}{{../this}}{{this}} {{/each}}{{/each}}"
    jinja, _ = translate(source)
    assert "item2" in jinja
    assert text(source, attributes={"a": ["x", "y"], "b": ["1", "2"]}) == "x1 x2 y1 y2"


@pytest.mark.parametrize(
    ("source", "attrs", "expected"),
    [
        ('{{#if (eq Attributes.Tier "Gold")}}g{{else}}o{{/if}}', {"tier": "Gold"}, "g"),
        ('{{#if (ne Attributes.Tier "Gold")}}g{{else}}o{{/if}}', {"tier": "Gold"}, "o"),
        ("{{#if (gte Metrics.Spend 100)}}big{{/if}}", {"spend": Decimal(100)}, "big"),
        ("{{#if (lt Metrics.Spend 100)}}small{{/if}}", {"spend": Decimal(99)}, "small"),
        ("{{#if (and Attributes.A Attributes.B)}}both{{/if}}", {"a": "1", "b": "1"}, "both"),
        ("{{#if (or Attributes.A Attributes.B)}}one{{/if}}", {"b": "1"}, "one"),
        ("{{#if (not Attributes.A)}}none{{/if}}", {}, "none"),
        ('{{#eq Attributes.Tier "Gold"}}g{{else}}o{{/eq}}', {"tier": "Silver"}, "o"),
        ("{{#if (and (gt Metrics.N 1) (not Attributes.X))}}ok{{/if}}", {"n": 2}, "ok"),
    ],
)
def test_comparison_and_logic_helpers(source: str, attrs: dict[str, Any], expected: str) -> None:
    jinja, result = translate(source)
    assert not result.todos
    assert render_text(jinja, context(attributes=attrs)) == expected


def test_string_helpers_become_filters() -> None:
    source = "{{upper User.UserAttributes.FirstName}} {{lower Attributes.Code}} {{capitalize Attributes.City}}"
    assert text(source, attributes={"code": "TEA", "city": "osaka"}) == "HANAKO tea Osaka"


def test_an_unknown_block_helper_is_a_todo_that_renders_its_else_side() -> None:
    source = "a {{#withLocale Attributes.X}}inside{{else}}outside{{/withLocale}} b"
    jinja, result = translate(source)
    assert "{% if false %}inside{% else %}outside{% endif %}" in jinja
    assert [t.reason for t in result.todos] == ["block helper 'withLocale' is not supported"]
    assert render_text(jinja, context()) == "a outside b"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{> footer}}", "partials"),
        ('{{formatDate Attributes.D "YYYY"}}', "helper 'formatDate'"),
        ("{{#each Attributes.M}}{{@key}}{{/each}}", "data variable @key"),
        ("{{#each Attributes.M}}{{name}}{{/each}}", "a field of a list item"),
        ("{{#each User.UserId}}x{{/each}}", "is not a list"),
        ('{{#if (eq Attributes.A "x" strict=true)}}y{{/if}}', "hash arguments"),
    ],
)
def test_unsupported_constructs_are_listed(source: str, reason: str) -> None:
    jinja, result = translate(source)
    assert result.todos and reason in result.todos[0].reason
    render_text(jinja + "ok", context(attributes={"m": ["a"]}))  # still renders


def test_comments_vanish() -> None:
    assert text("a{{! short }}b{{!-- has }} inside --}}c") == "abc"


# --- whitespace --------------------------------------------------------------------------------
def test_standalone_block_lines_disappear_as_in_handlebars() -> None:
    source = (
        "Hi\n  {{#if Attributes.A}}\n  yes\n  {{else}}\n  no\n  {{/if}}\nBye\n  {{! note }}\nEnd"
    )
    assert text(source, attributes={"a": "1"}) == "Hi\n  yes\nBye\nEnd"
    assert text(source) == "Hi\n  no\nBye\nEnd"


def test_inline_tags_keep_their_newlines_and_indentation() -> None:
    source = "A {{#if Attributes.A}}x{{/if}}\n  {{#if Attributes.A}}y{{/if}} B\nC"
    # Jinja would eat the newline after {% endif %} and the indentation before {% if %}
    assert text(source, attributes={"a": "1"}) == "A x\n  y B\nC"


def test_tilde_strips_whitespace() -> None:
    source = "a   {{~User.UserId~}}   b\n\n{{~#if Attributes.A~}}\n  x  \n{{~/if}}"
    assert text(source, attributes={"a": "1"}) == "asamplebx"  # '~' strips newlines too
    assert text(source) == "asampleb"
    assert text("a  {{~User.UserId}}  b") == "asample  b"


def test_translated_template_reads_naturally() -> None:
    jinja, _ = translate(
        "Hi {{User.UserAttributes.FirstName}}\n{{#if Attributes.Tier}}\nTier: {{Attributes.Tier}}\n{{/if}}\nBye",
        defaults={"User.UserAttributes.FirstName": "there"},
    )
    assert jinja == (
        'Hi {{ customer.first_name | default("there", true) }}\n'
        "{% if customer.attributes.tier | default(none) %}\n"
        'Tier: {{ customer.attributes.tier | join(",") if customer.attributes.tier is sequence '
        'and customer.attributes.tier is not string else (("true" if customer.attributes.tier '
        'is sameas true else "false" if customer.attributes.tier is sameas false else '
        'customer.attributes.tier) if customer.attributes.tier is not none else "") }}\n'
        "{% endif %}\n"
        "Bye"
    )

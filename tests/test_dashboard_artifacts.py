"""The dashboard artifacts in dashboards/ parse, and read or write only what the MQTT contract v1 has.

Nothing about the contract is written down here a second time; it is derived:

- the topics of a wearer from :class:`sensorhub.mqtt.topics.Topics` (every topic property, one
  ``sensors/<placement>`` per :class:`~sensorhub.model.Placement`, one ``cmd/<name>`` per
  :data:`~sensorhub.mqtt.topics.COMMANDS`);
- the payload of each topic from the JSON Schema in docs/mqtt/schemas/ whose ``title`` names it;
- the Home Assistant entity ids from :func:`sensorhub.mqtt.discovery.discovery_messages`.

Each artifact's topics (after putting a test wearer into its placeholder or template variable) must
match a contract topic, every payload field it reads must be a property of that topic's schema, every
command it publishes must validate against the command's schema, and every entity id of the
Lovelace card must be one discovery creates. Two test wearers (``alex``, ``desk-2``) catch ids that
were written out instead of templated, and the HA slug rule (``desk-2`` → ``desk_2``).
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from collections import deque
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from sensorhub.model import Placement
from sensorhub.mqtt.discovery import discovery_messages
from sensorhub.mqtt.topics import COMMANDS, DEFAULT_ROOT, Topics

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
SCHEMAS = ROOT / "docs" / "mqtt" / "schemas"

GRAFANA_LIVE = DASHBOARDS / "grafana" / "sensorhub-live.json"
GRAFANA_HISTORY = DASHBOARDS / "grafana" / "sensorhub-history.json"
TELEGRAF = DASHBOARDS / "telegraf" / "sensorhub.conf"
NODE_RED = DASHBOARDS / "node-red" / "sensorhub-flow.json"
HA_CARD = DASHBOARDS / "home-assistant" / "sensorhub-card.yaml"
README = DASHBOARDS / "README.md"
ARTIFACTS = (GRAFANA_LIVE, GRAFANA_HISTORY, TELEGRAF, NODE_RED, HA_CARD)

WEARERS = ("alex", "desk-2")
PLACEMENTS = tuple(placement.value for placement in Placement)
#: The wearer placeholder of the Node-RED flow and the Lovelace card (dashboards/README.md).
PLACEHOLDER = "{wearer}"

Json = Any


# --- the contract, derived from the project --------------------------------------------------


def _topic_properties() -> list[str]:
    """Names of the Topics properties that are one concrete topic (not the base, not a filter)."""
    return [
        name
        for name, attr in vars(Topics).items()
        if isinstance(attr, property) and name != "base" and not name.endswith("_filter")
    ]


def _concrete_topics(wearer: str) -> set[str]:
    topics = Topics.for_wearer(wearer)
    return (
        {getattr(topics, name) for name in _topic_properties()}
        | {topics.sensor(placement) for placement in PLACEMENTS}
        | {topics.cmd(name) for name in COMMANDS}
    )


@cache
def _schemas() -> dict[str, Json]:
    """Schema file name → schema, every one checked to be a valid schema."""
    out = {}
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        out[path.name] = schema
    return out


@cache
def contract(wearer: str) -> dict[str, Json]:
    """Every topic of ``wearer`` → the JSON Schema of its payload (matched by the schema's title)."""
    base = Topics.for_wearer(wearer).base
    by_topic: dict[str, Json] = {}
    for schema in _schemas().values():
        title = schema["title"].replace(f"{DEFAULT_ROOT}/<wearer>", base)
        for placement in PLACEMENTS if "<placement>" in title else (None,):
            by_topic[title if placement is None else title.replace("<placement>", placement)] = schema
    return {topic: by_topic[topic] for topic in _concrete_topics(wearer) if topic in by_topic}


def _is_command(wearer: str, topic: str) -> bool:
    return Topics.for_wearer(wearer).command_name(topic) is not None


def _valid_filter(topic_filter: str) -> bool:
    levels = topic_filter.split("/")
    return all(level in ("+", "#") or not ({"+", "#"} & set(level)) for level in levels) and "#" not in levels[:-1]


def filter_matches(topic_filter: str, topic: str) -> bool:
    """MQTT 5.0 §4.7: does a subscription filter match a topic name."""
    want, have = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


def subscribed_schemas(wearer: str, topic_filter: str, where: str) -> list[Json]:
    """Schemas of the contract topics a dashboard's subscription receives; fails when there are none."""
    assert _valid_filter(topic_filter), f"{where}: {topic_filter!r} is not a valid MQTT topic filter"
    matched = {topic: schema for topic, schema in contract(wearer).items() if filter_matches(topic_filter, topic)}
    assert matched, (
        f"{where}: subscribes to {topic_filter!r}, which matches no sensorhub v1 topic of wearer {wearer!r}; "
        f"the topics are {sorted(contract(wearer))}"
    )
    commands = [topic for topic in matched if _is_command(wearer, topic)]
    assert not commands, f"{where}: {topic_filter!r} reads command topics {commands}"
    return list(matched.values())


def published_schema(wearer: str, topic: str, where: str) -> Json:
    """Schema of a command topic a dashboard publishes to; fails for anything but a v1 command topic."""
    assert topic in contract(wearer), (
        f"{where}: publishes to {topic!r}, which is not a sensorhub v1 topic of wearer {wearer!r}; "
        f"the commands are {sorted(t for t in contract(wearer) if _is_command(wearer, t))}"
    )
    assert _is_command(wearer, topic), f"{where}: publishes to {topic!r}, which sensorhub publishes, not reads"
    return contract(wearer)[topic]


def _resolve(schema: Json, node: Json) -> Json:
    """``node`` with local ``$ref``s (``#/$defs/...``) followed."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local $refs are expected, got {ref!r}"
        node = schema
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def has_field(schema: Json, path: str) -> bool:
    """Whether a dotted payload path (``rom_deg.thoracic``) is a declared property of the schema."""
    node = schema
    for key in path.split("."):
        node = _resolve(schema, node)
        if not isinstance(node, dict) or key not in node.get("properties", {}):
            return False
        node = node["properties"][key]
    return True


def check_fields(schemas: list[Json], fields: set[str], where: str) -> None:
    for field in sorted(fields):
        for schema in schemas:
            assert has_field(schema, field), (
                f"{where}: reads {field!r}, which is not a property of {schema['title']} "
                f"(docs/mqtt/schemas; properties: {sorted(schema.get('properties', {}))})"
            )


def check_command(wearer: str, topic: str, payload: Json, where: str) -> None:
    schema = published_schema(wearer, topic, where)
    errors = [error.message for error in Draft202012Validator(schema).iter_errors(payload)]
    assert not errors, f"{where}: payload {payload!r} for {topic} does not validate: {errors}"


@cache
def ha_entities(wearer: str) -> tuple[str, frozenset[str]]:
    """(the wearer's form in HA entity ids, every entity id discovery creates) for all placements."""
    messages = discovery_messages(Topics.for_wearer(wearer), PLACEMENTS, sw_version="0.0.0-test")
    ids = frozenset(json.loads(payload)["default_entity_id"] for _, payload in messages)
    posture = [entity for entity in ids if entity.startswith("sensor.") and entity.endswith("_posture")]
    assert len(posture) == 1, posture
    slug = posture[0].removeprefix("sensor.sensorhub_").removesuffix("_posture")
    return slug, ids


def _strings(value: Json, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON/YAML structure with where it is."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")


# --- the contract derivation itself ------------------------------------------------------------


@pytest.mark.parametrize("wearer", WEARERS)
def test_every_contract_topic_has_a_schema(wearer: str) -> None:
    missing = sorted(_concrete_topics(wearer) - set(contract(wearer)))
    assert not missing, f"no schema in docs/mqtt/schemas has a title naming {missing}"
    assert {Topics.for_wearer(wearer).angles, Topics.for_wearer(wearer).cmd("snooze")} <= set(contract(wearer))


def test_filter_matching() -> None:
    assert filter_matches("sensorhub/+/alerts", "sensorhub/alex/alerts")
    assert filter_matches("sensorhub/alex/sensors/+", "sensorhub/alex/sensors/sacral")
    assert filter_matches("sensorhub/#", "sensorhub/alex/sensors/sacral")
    assert not filter_matches("sensorhub/+/alert", "sensorhub/alex/alerts")
    assert not filter_matches("sensorhub/+", "sensorhub/alex/alerts")
    assert not filter_matches("sensorhub/alex/sensors", "sensorhub/alex/sensors/sacral")
    assert not _valid_filter("sensorhub/a+/alerts")
    assert not _valid_filter("sensorhub/#/alerts")


# --- every artifact parses ---------------------------------------------------------------------


def _load(path: Path) -> Json:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix in (".yaml", ".yml"):
        return yaml.safe_load(text)
    if path.suffix in (".conf", ".toml"):
        return tomllib.loads(text)
    raise AssertionError(f"{path}: no parser for {path.suffix} files; add one to this test")


def test_artifacts_exist_and_readme_explains_each() -> None:
    readme = README.read_text(encoding="utf-8")
    for path in ARTIFACTS:
        assert path.is_file(), f"{path} is missing"
        assert path.relative_to(DASHBOARDS).as_posix() in readme, f"dashboards/README.md does not mention {path.name}"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in DASHBOARDS.rglob("*") if p.is_file() and p.suffix != ".md"),
    ids=lambda p: p.relative_to(DASHBOARDS).as_posix(),
)
def test_artifact_parses(path: Path) -> None:
    assert _load(path), f"{path} is empty"


# --- Grafana: MQTT data source -----------------------------------------------------------------

_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_REDUCE_FIELDS = re.compile(r"/\^\(?([\w|]+)\)?\$/")
#: Fields the MQTT data source adds itself: the arrival time, and the whole payload when it is not a
#: JSON object (the plain-text status topic).
_PLUGIN_FIELDS = {"Time"}
_PLUGIN_RAW_FIELD = "Value"


def _variables(dashboard: Json) -> dict[str, Json]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def _expand(text: str, dashboard: Json, wearer: str, where: str) -> list[str]:
    """``text`` with every template variable replaced, once per combination of the variables' values."""
    variables = _variables(dashboard)
    names = sorted({a or b for a, b in _GRAFANA_VARIABLE.findall(text)})
    choices = []
    for name in names:
        assert name in variables, f"{where}: uses ${name}, which is not a variable of the dashboard"
        variable = variables[name]
        if name == "wearer":
            choices.append([Topics.for_wearer(wearer).wearer])
        elif variable["type"] == "custom":
            choices.append([value.strip() for value in variable["query"].split(",")])
        else:
            raise AssertionError(f"{where}: ${name} is a {variable['type']} variable; the test cannot enumerate it")
    out = []
    for values in itertools.product(*choices):
        lookup = dict(zip(names, values, strict=True))
        out.append(_GRAFANA_VARIABLE.sub(lambda m, lookup=lookup: lookup[m.group(1) or m.group(2)], text))
    return out


def grafana_fields_read(panel: Json) -> set[str]:
    """Field names a panel selects, renames or styles: what it expects in the data source's frames."""
    names: set[str] = set()
    for transformation in panel.get("transformations", []):
        kind, options = transformation["id"], transformation.get("options", {})
        if kind == "filterFieldsByName":
            names |= set(options.get("include", {}).get("names", []))
        elif kind == "organize":
            for key in ("renameByName", "indexByName", "excludeByName"):
                names |= set(options.get(key, {}))
        elif kind == "sortBy":
            names |= {sort["field"] for sort in options.get("sort", [])}
        elif kind == "convertFieldType":
            names |= {conversion["targetField"] for conversion in options.get("conversions", [])}
        else:
            raise AssertionError(f"panel {panel['title']!r}: teach grafana_fields_read the {kind!r} transformation")
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = override["matcher"]
        if matcher["id"] == "byName":
            names.add(matcher["options"])
    reduce_fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    if reduce_fields:
        match = _REDUCE_FIELDS.fullmatch(reduce_fields)
        assert match, f"panel {panel['title']!r}: reduceOptions.fields {reduce_fields!r} is not /^(a|b)$/"
        names |= set(match.group(1).split("|"))
    return names


def _panels(dashboard: Json) -> list[Json]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows
    return out


def _check_grafana_inputs(dashboard: Json, name: str, plugin: str) -> None:
    inputs = {item["name"]: item for item in dashboard["__inputs"]}
    assert inputs[name]["type"] == "datasource"
    assert inputs[name]["pluginId"] == plugin
    expected = {"type": plugin, "uid": f"${{{name}}}"}
    required = {(item["type"], item["id"]) for item in dashboard["__requires"]}
    assert ("datasource", plugin) in required
    grafana = next(item for item in dashboard["__requires"] if item["id"] == "grafana")
    assert int(grafana["version"].split(".")[0]) >= 10
    panels = _panels(dashboard)
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids repeat"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert ("panel", panel["type"]) in required, f"__requires lacks panel type {panel['type']}"
        assert panel["datasource"] == expected, f"panel {panel['title']!r} does not use the {name} input"
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == expected, f"panel {panel['title']!r} query {target['refId']} data source"


def test_grafana_live_is_an_importable_mqtt_dashboard() -> None:
    dashboard = _load(GRAFANA_LIVE)
    _check_grafana_inputs(dashboard, "DS_MQTT", "grafana-mqtt-datasource")
    assert _variables(dashboard)["wearer"]["type"] in ("textbox", "custom", "constant")


@pytest.mark.parametrize("wearer", WEARERS)
def test_grafana_live_reads_only_contract_topics_and_fields(wearer: str) -> None:
    dashboard = _load(GRAFANA_LIVE)
    kinds_read = set()
    for panel in _panels(dashboard):
        where = f"{GRAFANA_LIVE.name} panel {panel['title']!r}"
        schemas = []
        for target in panel["targets"]:
            assert "$wearer" in target["topic"] or "${wearer}" in target["topic"], f"{where}: topic not per wearer"
            for topic in _expand(target["topic"], dashboard, wearer, where):
                matched = subscribed_schemas(wearer, topic, where)
                schemas.extend(matched)
                kinds_read |= {schema["title"] for schema in matched}
        fields = grafana_fields_read(panel) - _PLUGIN_FIELDS
        if all(schema.get("type") != "object" for schema in schemas):
            fields -= {_PLUGIN_RAW_FIELD}
        check_fields(schemas, fields, where)
    for kind in ("angles", "posture", "alerts", "sensors/<placement>"):
        assert f"sensorhub/<wearer>/{kind}" in kinds_read, f"{GRAFANA_LIVE.name} shows nothing from {kind}"


# --- Telegraf -> InfluxDB ----------------------------------------------------------------------


def _consumers() -> list[Json]:
    return _load(TELEGRAF)["inputs"]["mqtt_consumer"]


@cache
def telegraf_measurements() -> dict[str, dict[str, set[str]]]:
    """Measurement → {"fields": ..., "tags": ...} as the Telegraf config writes them."""
    out: dict[str, dict[str, set[str]]] = {}
    for consumer in _consumers():
        topic_tags = {
            name for parsing in consumer.get("topic_parsing", []) for name in parsing["tags"].split("/") if name != "_"
        }
        for parser in consumer["json_v2"]:
            fields = {item.get("rename") or item["path"].split(".")[-1] for item in parser.get("field", [])}
            tags = {item.get("rename") or item["path"].split(".")[-1] for item in parser.get("tag", [])}
            name = parser["measurement_name"]
            assert name not in out, f"{TELEGRAF.name}: measurement {name} is written by two inputs"
            out[name] = {"fields": fields, "tags": tags | topic_tags}
    return out


@pytest.mark.parametrize("wearer", WEARERS)
def test_telegraf_subscribes_to_contract_topics_and_parses_schema_fields(wearer: str) -> None:
    kinds = set()
    for consumer in _consumers():
        where = f"{TELEGRAF.name} mqtt_consumer {consumer['topics']}"
        assert consumer["data_format"] == "json_v2", where
        schemas = [schema for topic in consumer["topics"] for schema in subscribed_schemas(wearer, topic, where)]
        kinds |= {schema["title"] for schema in schemas}
        assert consumer["json_v2"], f"{where}: no json_v2 rules"
        for parser in consumer["json_v2"]:
            assert parser.get("measurement_name"), f"{where}: json_v2 without measurement_name"
            check_fields(schemas, {parser["timestamp_path"]}, f"{where} timestamp_path")
            assert parser["timestamp_format"] == "unix", f"{where}: t is epoch seconds"
            for kind in ("field", "tag"):
                for item in parser.get(kind, []):
                    check_fields(schemas, {item["path"]}, f"{where} json_v2.{kind}")
                    # json_v2 fails the whole message when a path is absent, unless the rule is optional.
                    top = item["path"].split(".")[0]
                    if not all(top in schema.get("required", []) for schema in schemas):
                        assert item.get("optional") is True, (
                            f"{where}: {item['path']!r} may be absent from the payload; mark it optional = true"
                        )
        for parsing in consumer.get("topic_parsing", []):
            assert parsing["topic"] in consumer["topics"], f"{where}: topic_parsing for another topic"
            names = parsing["tags"].split("/")
            assert len(names) == len(parsing["topic"].split("/")), f"{where}: tags {parsing['tags']!r} vs topic levels"
            for topic in contract(wearer):
                if not filter_matches(parsing["topic"], topic):
                    continue
                tags = {name: level for name, level in zip(names, topic.split("/"), strict=True) if name != "_"}
                assert tags.get("wearer") == Topics.for_wearer(wearer).wearer, f"{where}: wearer tag of {topic}: {tags}"
                assert set(tags) <= {"wearer", "placement"}, f"{where}: unexpected topic tags {tags}"
                if "placement" in tags:
                    assert tags["placement"] in PLACEMENTS, f"{where}: placement tag of {topic}: {tags}"
    for kind in ("angles", "posture", "alerts", "sensors/<placement>"):
        assert f"sensorhub/<wearer>/{kind}" in kinds, f"{TELEGRAF.name} does not collect {kind}"


def test_telegraf_writes_influxdb_v2_from_the_environment() -> None:
    config = _load(TELEGRAF)
    (output,) = config["outputs"]["influxdb_v2"]
    for key in ("token", "organization", "bucket"):
        assert re.fullmatch(r"\$\{[A-Z0-9_]+\}", output[key]), f"{TELEGRAF.name}: {key} must be an env placeholder"
    assert all(re.fullmatch(r"\$\{[A-Z0-9_]+\}", url) for url in output["urls"])
    assert "token" not in json.dumps(config["inputs"]).lower()


# --- Grafana: InfluxDB history -----------------------------------------------------------------

_FLUX_COMPARISON = re.compile(r"\br\.(\w+)\s*==\s*\"([^\"]*)\"")
_FLUX_COLUMNS = re.compile(r"columns:\s*\[([^\]]*)\]")
_FLUX_RENAME = re.compile(r"rename\(columns:\s*\{([^}]*)\}")


def test_grafana_history_is_an_importable_influxdb_dashboard() -> None:
    dashboard = _load(GRAFANA_HISTORY)
    _check_grafana_inputs(dashboard, "DS_INFLUXDB", "influxdb")
    variables = _variables(dashboard)
    assert {"bucket", "wearer"} <= set(variables)


def test_grafana_history_queries_what_telegraf_writes() -> None:
    dashboard = _load(GRAFANA_HISTORY)
    measurements = telegraf_measurements()
    queries = [(panel, target["query"]) for panel in _panels(dashboard) for target in panel["targets"]]
    queries += [(variable, variable["query"]) for variable in dashboard["templating"]["list"]]
    read = set()
    for owner, query in queries:
        if not isinstance(query, str) or "r._measurement" not in query:
            continue
        where = f"{GRAFANA_HISTORY.name} {owner.get('title') or owner.get('name')!r}"
        for name in {a or b for a, b in _GRAFANA_VARIABLE.findall(query)}:
            assert name in _variables(dashboard) or name.startswith("__"), f"{where}: unknown variable ${name}"
        compared = _FLUX_COMPARISON.findall(query)
        (measurement,) = {value for column, value in compared if column == "_measurement"}
        assert measurement in measurements, f"{where}: Telegraf writes no measurement {measurement!r}"
        written = measurements[measurement]
        read.add(measurement)
        for column, value in compared:
            if column == "_field":
                assert value in written["fields"], f"{where}: {measurement} has no field {value!r}: {written}"
            elif column != "_measurement":
                assert column in written["tags"], f"{where}: {measurement} has no tag {column!r}: {written}"
        renamed = {
            new.strip().strip('"')
            for body in _FLUX_RENAME.findall(query)
            for new in (pair.split(":")[1] for pair in body.split(","))
        }
        for body in _FLUX_COLUMNS.findall(query):
            for column in (c.strip().strip('"') for c in body.split(",")):
                assert column in {"_time", "_value", "_field"} | written["fields"] | written["tags"], (
                    f"{where}: column {column!r} is neither a field nor a tag of {measurement}"
                )
        for name in grafana_fields_read(owner) if "targets" in owner else ():
            assert name in written["fields"] | renamed, f"{where}: styles field {name!r}, which the query never yields"
    assert {"sensorhub_angles", "sensorhub_posture", "sensorhub_alerts"} <= read


# --- Node-RED ----------------------------------------------------------------------------------

_NODE_RED_CORE = {
    "tab",
    "mqtt-broker",
    "mqtt in",
    "mqtt out",
    "json",
    "switch",
    "change",
    "debug",
    "inject",
    "delay",
    "function",
}
#: node-red-dashboard (1.x) nodes; dashboards/README.md names the palette package.
_NODE_RED_DASHBOARD = {"ui_tab", "ui_group", "ui_base", "ui_gauge", "ui_button", "ui_toast", "ui_text", "ui_chart"}
_PAYLOAD_PATH = re.compile(r"(?<![\w$.])(?:msg\.)?payload((?:\.[A-Za-z_]\w*)+)")


def _flow() -> dict[str, Json]:
    nodes = _load(NODE_RED)
    assert isinstance(nodes, list)
    by_id = {node["id"]: node for node in nodes}
    assert len(by_id) == len(nodes), f"{NODE_RED.name}: node ids repeat"
    return by_id


def _downstream(flow: dict[str, Json], start: str) -> Iterator[Json]:
    """Nodes a message from ``start`` reaches, stopping after a node that replaces msg.payload."""
    seen, queue = {start}, deque([start])
    while queue:
        node = flow[queue.popleft()]
        yield node
        if node["type"] == "change" and any(rule["p"] == "payload" and rule["t"] == "set" for rule in node["rules"]):
            continue
        for output in node.get("wires", []):
            for target in output:
                if target not in seen:
                    seen.add(target)
                    queue.append(target)


def test_node_red_flow_is_wired_and_uses_a_local_broker() -> None:
    flow = _flow()
    types = {node["type"] for node in flow.values()}
    unknown = types - _NODE_RED_CORE - _NODE_RED_DASHBOARD
    assert not unknown, f"{NODE_RED.name}: node types outside Node-RED core and node-red-dashboard: {unknown}"
    (tab,) = (node for node in flow.values() if node["type"] == "tab")
    (broker,) = (node for node in flow.values() if node["type"] == "mqtt-broker")
    assert (broker["broker"], str(broker["port"])) == ("localhost", "1883")
    for node in flow.values():
        assert node.get("z", tab["id"]) == tab["id"]
        for output in node.get("wires", []):
            for target in output:
                assert target in flow, f"{NODE_RED.name}: node {node['id']} is wired to missing node {target}"
        if node["type"] in ("mqtt in", "mqtt out"):
            assert node["broker"] == broker["id"], f"{NODE_RED.name}: {node['type']} {node['id']} broker"
        for key in ("group", "tab"):
            if node["type"].startswith("ui_") and key in node:
                assert node[key] in flow, f"{NODE_RED.name}: {node['id']} refers to missing {key} {node[key]}"


@pytest.mark.parametrize("wearer", WEARERS)
def test_node_red_reads_contract_topics_and_fields(wearer: str) -> None:
    flow = _flow()
    level = Topics.for_wearer(wearer).wearer
    subscribed = set()
    for node in flow.values():
        if node["type"] != "mqtt in":
            continue
        where = f"{NODE_RED.name} mqtt in {node['topic']!r}"
        schemas = subscribed_schemas(wearer, node["topic"].replace(PLACEHOLDER, level), where)
        subscribed |= {schema["title"] for schema in schemas}
        for reached in _downstream(flow, node["id"]):
            fields = set()
            for _, text in _strings({k: v for k, v in reached.items() if k not in ("id", "z", "wires", "name")}):
                fields |= {match.lstrip(".") for match in _PAYLOAD_PATH.findall(text)}
            check_fields(schemas, fields, f"{where} → {reached['type']} {reached.get('name') or reached['id']}")
    assert {"sensorhub/<wearer>/alerts", "sensorhub/<wearer>/angles"} <= subscribed


def _payload(node: Json, where: str) -> Json:
    kind, text = node.get("payloadType", "str"), node.get("payload", "")
    if kind == "json":
        return json.loads(text)
    assert kind == "str", f"{where}: a command payload must be JSON (payloadType json), got {kind}"
    assert text == "", f"{where}: a command payload must be a JSON object, got the string {text!r}"
    return {}  # an empty payload means {} (docs/mqtt.md, Commands)


@pytest.mark.parametrize("wearer", WEARERS)
def test_node_red_publishes_valid_commands(wearer: str) -> None:
    flow = _flow()
    level = Topics.for_wearer(wearer).wearer
    outs = {node["id"] for node in flow.values() if node["type"] == "mqtt out"}
    published = set()
    for node in flow.values():
        if node["type"] == "mqtt out" and node["topic"]:
            published_schema(wearer, node["topic"].replace(PLACEHOLDER, level), f"{NODE_RED.name} mqtt out")
        if node["type"] not in ("inject", "ui_button"):
            continue
        if not any(reached["id"] in outs for reached in _downstream(flow, node["id"])):
            continue
        where = f"{NODE_RED.name} {node['type']} {node.get('name') or node.get('label')!r}"
        topic = node["topic"].replace(PLACEHOLDER, level)
        check_command(wearer, topic, _payload(node, where), where)
        published.add(Topics.for_wearer(wearer).command_name(topic))
    assert {"calibrate", "snooze"} <= published, f"{NODE_RED.name} publishes only {published}"


# --- Home Assistant ----------------------------------------------------------------------------

_ENTITY_ID = re.compile(r"^[a-z_]+\.sensorhub_\S+$")


@pytest.mark.parametrize("wearer", WEARERS)
def test_home_assistant_card_uses_only_discovery_entities(wearer: str) -> None:
    card = _load(HA_CARD)
    assert card["type"] == "vertical-stack"
    slug, entities = ha_entities(wearer)
    used = set()
    for where, text in _strings(card):
        if _ENTITY_ID.match(text):
            entity = text.replace(PLACEHOLDER, slug)
            assert entity in entities, (
                f"{HA_CARD.name}{where}: {text!r} (for wearer {wearer!r}: {entity}) is not an entity sensorhub's "
                f"discovery creates; those are {sorted(entities)}"
            )
            used.add(entity)
    for suffix in ("_thoracic_flexion", "_lumbar_flexion", "_posture", "_slouching", "_calibrate", "_snooze"):
        assert any(entity.endswith(suffix) for entity in used), f"{HA_CARD.name} does not show *{suffix}"


@pytest.mark.parametrize("wearer", WEARERS)
def test_home_assistant_card_actions_press_discovery_buttons_or_publish_valid_commands(wearer: str) -> None:
    slug, entities = ha_entities(wearer)

    def actions(value: Json) -> Iterator[Json]:
        if isinstance(value, dict):
            if value.get("action") in ("perform-action", "call-service"):
                yield value
            for item in value.values():
                yield from actions(item)
        elif isinstance(value, list):
            for item in value:
                yield from actions(item)

    found = list(actions(_load(HA_CARD)))
    assert found, f"{HA_CARD.name} has no button actions"
    for action in found:
        service = action.get("perform_action") or action.get("service")
        data = action.get("data") or action.get("service_data") or {}
        if service == "button.press":
            target = action["target"]["entity_id"].replace(PLACEHOLDER, slug)
            assert target.startswith("button."), f"{HA_CARD.name}: button.press on {target}"
            assert target in entities, f"{HA_CARD.name}: presses {target}, which discovery does not create"
        elif service == "mqtt.publish":
            topic = data["topic"].replace(PLACEHOLDER, Topics.for_wearer(wearer).wearer)
            check_command(wearer, topic, json.loads(data.get("payload") or "{}"), f"{HA_CARD.name} mqtt.publish")
        else:
            raise AssertionError(f"{HA_CARD.name}: action {service!r}; use button.press or mqtt.publish")

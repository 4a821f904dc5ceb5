"""MQTT: the topics, payloads and commands of DESIGN §7, Home Assistant discovery, and the I/O around them.

Pure modules (no I/O, no asyncio, no aiomqtt; unit-tested byte for byte):

- :mod:`~sensorhub.mqtt.topics`: the wearer-id sanitiser and every topic name of the v1 tree
  (``sensorhub/<wearer>/…``), with the QoS and retain flag each topic is published with.
- :mod:`~sensorhub.mqtt.payloads`: one builder per topic that turns values into the JSON object of
  the contract (rounded, NaN-free) and :func:`~sensorhub.mqtt.payloads.encode` for the wire.
- :mod:`~sensorhub.mqtt.commands`: parses the ``cmd/<name>`` payloads dashboards send into typed
  commands, or a :class:`~sensorhub.mqtt.commands.CommandError` that says what is allowed.
- :mod:`~sensorhub.mqtt.discovery`: the retained Home Assistant MQTT discovery messages for one wearer.
- :mod:`~sensorhub.mqtt.backoff`: the reconnect schedule, a pure function.

I/O:

- :mod:`~sensorhub.mqtt.publisher`: the only aiomqtt importer; publishes, subscribes, reconnects.
- :mod:`~sensorhub.mqtt.broker`: an embedded broker for the out-of-the-box default.

The JSON Schemas of every payload live in ``docs/mqtt/schemas/`` and the tests validate every
builder's output against them.
"""

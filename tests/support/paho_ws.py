"""paho-mqtt over WebSocket, for tests/mqtt_websocket.rs.

usage: paho_ws.py pub PORT VERSION TOPIC PAYLOAD
       paho_ws.py sub PORT VERSION TOPIC COUNT

VERSION is 31, 311 or 5. PAYLOAD "size:N" stands for N bytes (i % 251). The subscriber
prints "SUBACK ..." once subscribed, then "MSG|topic|qos|length|sha256" per message,
and exits 0 after COUNT messages; both exit 2 if the broker does not answer in 30 s.
"""
import hashlib
import sys
import threading

import paho.mqtt.client as mqtt

mode, port, version, topic, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
protocol = {"31": mqtt.MQTTv31, "311": mqtt.MQTTv311, "5": mqtt.MQTTv5}[version]
client = mqtt.Client(client_id="paho-ws-%s-%s" % (mode, version), protocol=protocol, transport="websockets")
client.ws_set_options(path="/mqtt")
done = threading.Event()
received = []


def on_connect(c, userdata, flags, rc, properties=None):
    # 3.1.1 passes an int, 5.0 a ReasonCodes object.
    print("CONNACK", getattr(rc, "value", rc), flush=True)
    if mode == "sub":
        c.subscribe(topic, qos=1)
    else:
        if arg.startswith("size:"):
            payload = bytes(i % 251 for i in range(int(arg[5:])))
        else:
            payload = arg.encode()
        info = c.publish(topic, payload, qos=1)

        def wait():
            info.wait_for_publish()
            print("PUBLISHED", len(payload), flush=True)
            c.disconnect()

        threading.Thread(target=wait, daemon=True).start()


def on_subscribe(c, userdata, mid, granted, properties=None):
    print("SUBACK", [getattr(g, "value", g) for g in granted], flush=True)


def on_message(c, userdata, msg):
    digest = hashlib.sha256(msg.payload).hexdigest()
    print("MSG|%s|%d|%d|%s" % (msg.topic, msg.qos, len(msg.payload), digest), flush=True)
    received.append(msg)
    if len(received) >= int(arg):
        c.disconnect()


def on_disconnect(c, userdata, rc, properties=None):
    done.set()


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.on_disconnect = on_disconnect
client.connect("127.0.0.1", port, keepalive=30)
client.loop_start()
if not done.wait(30):
    print("TIMEOUT", flush=True)
    sys.exit(2)
client.loop_stop()

"""paho-mqtt resumes a persistent session on our broker (tests/mqtt_delivery.rs).

Usage: resume.py PORT 5|311. A subscriber subscribes at QoS 2 and leaves; a publisher
sends m0..m5 at QoS 1 and 2 alternately; the subscriber comes back with Clean Start 0
(3.1.1: Clean Session 0) and prints the session-present flags and what it got.
"""
import sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

port = int(sys.argv[1]); version = sys.argv[2]; cid = "paho-" + version
v5 = version == "5"
proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
topic = "paho/" + version

def client(name, clean):
    if v5:
        c = mqtt.Client(client_id=name, protocol=proto)
    else:
        c = mqtt.Client(client_id=name, clean_session=clean, protocol=proto)
    return c

def connect(c, clean):
    done = threading.Event(); info = {}
    def on_connect(cl, ud, flags, rc, props=None):
        info["present"] = bool(flags.get("session present")); info["rc"] = int(rc) if not hasattr(rc, "value") else rc.value
        done.set()
    c.on_connect = on_connect
    if v5:
        p = Properties(PacketTypes.CONNECT); p.SessionExpiryInterval = 300
        c.connect("127.0.0.1", port, clean_start=clean, properties=p)
    else:
        c.connect("127.0.0.1", port)
    c.loop_start()
    assert done.wait(20), "no CONNACK"
    return info

out = {}
sub = client(cid, v5)  # 3.1.1: Clean Session 0 from the start
out["first"] = connect(sub, True)
subscribed = threading.Event()
sub.on_subscribe = lambda *a: subscribed.set()
sub.subscribe(topic, qos=2)
assert subscribed.wait(20)
sub.disconnect(); sub.loop_stop()

pub = client("paho-pub-" + version, True)
connect(pub, True)
infos = [pub.publish(topic, "m%d" % i, qos=1 + i % 2) for i in range(6)]
for i in infos:
    i.wait_for_publish(20)
pub.disconnect(); pub.loop_stop()

got = []; all_in = threading.Event()
sub = client(cid, False)
def on_message(cl, ud, msg):
    got.append([msg.payload.decode(), msg.qos, bool(msg.dup)])
    if len(got) >= 6: all_in.set()
sub.on_message = on_message
out["again"] = connect(sub, False)
all_in.wait(20)
time.sleep(0.5)  # a duplicate would arrive now
sub.disconnect(); sub.loop_stop()
print("first present=%d rc=%d" % (out["first"]["present"], out["first"]["rc"]))
print("again present=%d rc=%d" % (out["again"]["present"], out["again"]["rc"]))
for payload, qos, dup in got:
    print("got %s qos=%d" % (payload, qos))

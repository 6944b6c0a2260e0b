#!/usr/bin/env python3
"""Python (confluent-kafka) side of `healthcode bench kafka`.

Produces or consumes the same workload as the Swift side, with the same librdkafka settings:
idempotent producer, acks=all, linger, no compression, murmur2 partitioner; 300-byte values,
16-byte keys out of 10 000 persons. Prints one JSON object with the rate.

  kafka_python.py produce --bootstrap HOST:PORT --topic T --messages N [--linger-ms 5] [--size 300]
  kafka_python.py consume --bootstrap HOST:PORT --topic T --messages N --partitions 8
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

KEYS = [b"%016d" % i for i in range(10_000)]


def value_of(size):
    head = b'{"event":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def produce(args):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": args.linger_ms,
        "batch.num.messages": 10_000,
        "batch.size": 1_000_000,
        "compression.codec": "none",
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 100_000,
    })
    value = value_of(args.size)
    failed = 0
    delivered = 0

    def on_delivery(err, _msg):
        nonlocal failed, delivered
        if err is not None:
            failed += 1
        else:
            delivered += 1

    topic = args.topic
    start = time.perf_counter()
    for i in range(args.messages):
        while True:
            try:
                producer.produce(topic, value, KEYS[i % 10_000], on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.005)
        if i % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    elapsed = time.perf_counter() - start
    if failed or remaining or delivered != args.messages:
        sys.exit(f"python produce: {failed} failed, {remaining} unflushed, {delivered} delivered")
    print(json.dumps({"messages": args.messages, "seconds": elapsed, "rate": args.messages / elapsed}))


def consume(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "bench-python-unjoined",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
    })
    received = 0
    value_bytes = 0
    partitions = [TopicPartition(args.topic, p, 0) for p in range(args.partitions)]
    # Learn the partitions' leaders first, as the Swift side does.
    for partition in partitions:
        consumer.get_watermark_offsets(partition, timeout=10)
    start = time.perf_counter()
    consumer.assign(partitions)
    deadline = start + 120
    while received < args.messages and time.perf_counter() < deadline:
        for message in consumer.consume(num_messages=2048, timeout=1.0):
            if message.error():
                raise KafkaException(message.error())
            value_bytes += len(message.value())
            received += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    if received < args.messages:
        sys.exit(f"python consume: only {received} of {args.messages} messages")
    print(json.dumps({"messages": received, "bytes": value_bytes, "seconds": elapsed, "rate": received / elapsed}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    produce(args) if args.mode == "produce" else consume(args)


if __name__ == "__main__":
    main()

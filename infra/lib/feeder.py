"""What Lambda's event source mappings do for the deployed stack, for infra/dev: feeds the
functions under `cargo lambda watch` through its direct-invocation endpoint
(`POST <invoke>/<binary>/invocations`). Uses boto3 from .venv against moto.

  feeder.py CONFIG [--no-events]

CONFIG is the JSON written by `devstack.py offline-resources`. Three threads:

- jobs: long-polls the jobs queue (up to the template's batch size), invokes `worker` with
  the SQS event, deletes what was consumed and makes each message of `batchItemFailures`
  visible again after a few seconds (a failed invocation: the whole batch). The queue's
  redrive policy moves a message that keeps failing to the dead-letter queue.
- stream: reads the table's stream from its starting position, keeps the records the
  template's filter lets through (grant items), invokes `publisher` with them in Lambda's
  shape (`eventSourceARN`, epoch-second `ApproximateCreationDateTime`, `{"Records": [...]}`)
  and retries from the first failed SequenceNumber; after the template's
  MaximumRetryAttempts the batch goes to the on-failure queue, as it would when deployed.
- events (not with --no-events, where the command under `infra/dev --run` owns the queue):
  tails the queue the bus's rule sends to, and appends one line per event to the events log:
  `HH:MM:SS DetailType {detail}`.

Its own log (stderr) is one line per batch or failure; it never prints a message body,
which may hold what a backend sent, or a function's answer.
"""

import base64
import datetime
import json
import sys
import threading
import time
import urllib.error
import urllib.request

import boto3
import botocore.config

REGION = "us-east-1"
# Long enough for cargo lambda to rebuild a function after an edit.
INVOKE_TIMEOUT = 600


def log(message):
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def client(config, service):
    return boto3.client(
        service,
        endpoint_url=config["endpoint"],
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(read_timeout=60, retries={"max_attempts": 2}),
    )


class InvokeError(Exception):
    pass


def invoke(config, binary, payload):
    """The function's answer, or InvokeError for an invocation that failed (no answer, a
    function error, an answer that is not JSON)."""
    req = urllib.request.Request(
        f"{config['invoke']}/{binary}/invocations",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=INVOKE_TIMEOUT) as resp:
            function_error = resp.headers.get("X-Amz-Function-Error")
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raise InvokeError(f"HTTP {err.code}") from None
    except OSError as err:
        raise InvokeError(str(err)) from None
    if function_error:
        raise InvokeError(f"function error ({function_error})")
    try:
        return json.loads(raw)
    except ValueError:
        raise InvokeError("the answer is not JSON") from None


def failed_ids(answer, ids):
    """The itemIdentifiers of a batch response, all of `ids` when the response is not a valid
    one (Lambda then fails the whole batch), none when it lists no failures."""
    if not isinstance(answer, dict):
        return list(ids)
    failures = answer.get("batchItemFailures")
    if not failures:
        return []
    if not isinstance(failures, list):
        return list(ids)
    failed = []
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(item, str) or item not in ids:
            return list(ids)
        failed.append(item)
    return failed


def forever(name, step):
    """Runs step() in a loop; an error is logged and retried a second later."""
    while True:
        try:
            step()
        except Exception as err:  # noqa: BLE001 - a feeder keeps feeding
            log(f"{name}: {type(err).__name__}: {err}")
            time.sleep(1)


# ---------------------------------------------------------------- SQS -> worker
def sqs_record(message, queue_arn):
    """An SQS message as the Lambda SQS event carries it."""
    attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        attributes[name] = {
            "dataType": value["DataType"],
            "stringListValues": [],
            "binaryListValues": [],
        }
        if "StringValue" in value:
            attributes[name]["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attributes[name]["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def jobs_step(config, sqs):
    jobs = config["jobs"]
    messages = sqs.receive_message(
        QueueUrl=jobs["url"],
        MaxNumberOfMessages=min(10, jobs["batch_size"]),
        WaitTimeSeconds=10,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    if not messages:
        return
    handles = {m["MessageId"]: m["ReceiptHandle"] for m in messages}
    try:
        answer = invoke(config, "worker", {"Records": [sqs_record(m, jobs["arn"]) for m in messages]})
        failed = failed_ids(answer, handles)
    except InvokeError as err:
        log(f"worker: invocation failed ({err}); the whole batch will be retried")
        failed = list(handles)
    consumed = [i for i in handles if i not in failed]
    if consumed:
        entries = [{"Id": str(n), "ReceiptHandle": handles[i]} for n, i in enumerate(consumed)]
        sqs.delete_message_batch(QueueUrl=jobs["url"], Entries=entries)
    if failed:
        entries = [
            {"Id": str(n), "ReceiptHandle": handles[i], "VisibilityTimeout": jobs["retry_visibility"]}
            for n, i in enumerate(failed)
        ]
        sqs.change_message_visibility_batch(QueueUrl=jobs["url"], Entries=entries)
    retry = f", {len(failed)} to retry in {jobs['retry_visibility']} s" if failed else ""
    log(f"worker: {len(messages)} job(s), {len(consumed)} consumed{retry}")
    for message in messages:
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0))
        if message["MessageId"] in failed and receives >= jobs["max_receive_count"]:
            log(f"worker: message {message['MessageId']} failed {receives} times: "
                "the redrive policy moves it to the dead-letter queue")


# ---------------------------------------------------------------- stream -> publisher
def wire(value):
    """A boto3-parsed stream record back to its JSON form: binary attributes as base64,
    timestamps as epoch seconds (Lambda sends an integer)."""
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    return value


def matches(pattern, value):
    """An event-source filter pattern (exact values and `prefix`, what the template uses)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        return any(matches_leaf(p, value) for p in pattern)
    raise ValueError(f"unsupported filter pattern {pattern!r}")


def matches_leaf(pattern, value):
    if isinstance(pattern, dict):
        if set(pattern) == {"prefix"}:
            return isinstance(value, str) and value.startswith(pattern["prefix"])
        raise ValueError(f"unsupported filter rule {pattern!r}: infra/lib/feeder.py knows exact values and prefix")
    return pattern == value


class Stream:
    def __init__(self, config):
        self.config = config
        self.stream = config["stream"]
        self.streams = client(config, "dynamodbstreams")
        self.sqs = client(config, "sqs")
        self.iterators = {}  # shard id -> iterator
        self.attempts = {}  # shard id -> failed attempts of the batch at its iterator
        for pattern in self.stream["filters"]:
            matches(pattern, {})  # unsupported rules fail at start, not at the first record

    def wanted(self, record):
        return not self.stream["filters"] or any(matches(p, record) for p in self.stream["filters"])

    def iterator(self, shard, kind, sequence=None):
        extra = {"SequenceNumber": sequence} if sequence else {}
        return self.streams.get_shard_iterator(
            StreamArn=self.stream["arn"], ShardId=shard, ShardIteratorType=kind, **extra
        )["ShardIterator"]

    def step(self):
        if not self.iterators:
            shards = self.streams.describe_stream(StreamArn=self.stream["arn"])["StreamDescription"]["Shards"]
            for shard in shards:
                self.iterators[shard["ShardId"]] = self.iterator(shard["ShardId"], self.stream["starting_position"])
        busy = False
        for shard, position in list(self.iterators.items()):
            busy |= self.shard_step(shard, position)
        if not busy:
            time.sleep(1)

    def shard_step(self, shard, position):
        """One batch of one shard; True when there was one."""
        answer = self.streams.get_records(ShardIterator=position, Limit=min(1000, self.stream["batch_size"]))
        records = [wire(r) for r in answer.get("Records", [])]
        following = answer.get("NextShardIterator")
        if not records:
            return False
        for record in records:
            record["eventSourceARN"] = self.stream["arn"]
        batch = [r for r in records if self.wanted(r)]
        if not batch:
            self.advance(shard, following)
            return True
        sequences = [r["dynamodb"]["SequenceNumber"] for r in batch]
        try:
            failed = failed_ids(invoke(self.config, "publisher", {"Records": batch}), sequences)
        except InvokeError as err:
            log(f"publisher: invocation failed ({err})")
            failed = sequences
        if not failed:
            log(f"publisher: {len(batch)} record(s) of {len(records)} published")
            self.advance(shard, following)
            return True
        # Lambda retries from the first failed record: those before it are done.
        first = min(failed, key=int)
        attempts = self.attempts.get(shard, 0) + 1
        retries = self.stream["max_retries"]
        if 0 <= retries < attempts:
            self.give_up(shard, [r for r in batch if int(r["dynamodb"]["SequenceNumber"]) >= int(first)])
            self.advance(shard, following)
            return True
        self.attempts[shard] = attempts
        delay = min(30, 2 ** (attempts - 1))
        log(f"publisher: record {first} failed (attempt {attempts}); retrying from it in {delay} s")
        time.sleep(delay)
        self.iterators[shard] = self.iterator(shard, "AT_SEQUENCE_NUMBER", first)
        return True

    def advance(self, shard, following):
        self.attempts.pop(shard, None)
        if following:
            self.iterators[shard] = following
        else:
            self.iterators.pop(shard, None)  # a closed shard

    def give_up(self, shard, records):
        """What the on-failure destination receives: where the records are, not the records."""
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        info = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": self.attempts.get(shard, 0) + 1},
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": iso(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": iso(last.get("ApproximateCreationDateTime")),
                "batchSize": len(records),
                "streamArn": self.stream["arn"],
            },
        }
        self.sqs.send_message(QueueUrl=self.stream["failures_url"], MessageBody=json.dumps(info))
        log(f"publisher: gave up on records {first['SequenceNumber']}..{last['SequenceNumber']} "
            f"after {self.stream['max_retries']} retries; sent to the on-failure queue")


def iso(epoch):
    if not isinstance(epoch, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---------------------------------------------------------------- bus -> events log
def events_step(config, sqs, out):
    url = config["events_queue"]["url"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=10).get("Messages", [])
    for message in messages:
        try:
            envelope = json.loads(message["Body"])
            line = f"{envelope.get('detail-type')} {json.dumps(envelope.get('detail'), sort_keys=True)}"
        except ValueError:
            line = "(not an EventBridge event)"
        out.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        out.flush()
    if messages:
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--no-events"):
        raise SystemExit(__doc__)
    with open(argv[1], encoding="utf-8") as f:
        config = json.load(f)
    jobs_sqs = client(config, "sqs")
    stream = Stream(config)
    threads = [
        threading.Thread(target=forever, args=("jobs", lambda: jobs_step(config, jobs_sqs)), daemon=True),
        threading.Thread(target=forever, args=("stream", stream.step), daemon=True),
    ]
    if len(argv) == 2:
        events_sqs = client(config, "sqs")
        out = open(config["events_log"], "a", encoding="utf-8")  # noqa: SIM115 - open while the feeder runs
        threads.append(threading.Thread(target=forever, args=("events", lambda: events_step(config, events_sqs, out)), daemon=True))
    for thread in threads:
        thread.start()
    log("feeding worker (jobs queue) and publisher (table stream)"
        + ("" if len(argv) == 3 else f"; events to {config['events_log']}"))
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv)

"""moto_server with DynamoDB's per-item atomicity.

moto's server is threaded and its DynamoDB backend checks a ConditionExpression and then
writes without a lock, so two concurrent conditional writes to one item can both pass
their check: a lost update real DynamoDB never allows (a conditional write is atomic).
With the table's stream and indexes the window between check and write grew, and the
concurrency tests (16 upgrades racing on one grant) could see it. This launcher wraps
every DynamoDB write in one lock and then runs moto_server unchanged (same arguments);
reads, long polls and every other service stay concurrent."""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

WRITE_LOCK = threading.RLock()


def atomic(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with WRITE_LOCK:
            return method(*args, **kwargs)

    return wrapper


for name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    if hasattr(DynamoDBBackend, name):
        setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))

if __name__ == "__main__":
    main(sys.argv[1:])

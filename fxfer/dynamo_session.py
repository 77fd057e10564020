"""PynamoDB on the process's one botocore session (fxfer.aws), imported by fxfer.dynamo before the first model class or
connection: importing it makes every model's table connection a SharedSessionConnection."""

import pynamodb.connection.table
from pynamodb.connection import Connection

from fxfer import aws


class SharedSessionConnection(Connection):
    """PynamoDB's Connection on the process's botocore session, its client built once under fxfer.aws's lock."""

    @property
    def session(self):
        if self._aws_access_key_id:  # credentials of its own (none of ours has): PynamoDB's own session
            return super().session
        return aws.botocore_session()

    @property
    def client(self):
        # Two threads meeting a connection without a client would each build one; the lock is reentrant, cheap
        # when nobody else holds it, and held only while the client is looked up or built.
        with aws.client_creation_lock:
            return super().client


# The models' connections: PynamoDB builds one per model class (TableConnection), from this name.
pynamodb.connection.table.Connection = SharedSessionConnection

"""The rules of microvm-check and the calls that each rule reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One kind of snapshot-safety problem: its id, short name, why it breaks and how to fix it."""

    id: str
    name: str
    why: str
    fix: str


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule(
            "MVM001",
            "uuid-before-snapshot",
            "Every MicroVM of an image version is restored from the same memory snapshot, "
            "so a UUID made before the snapshot is the same in every MicroVM.",
            "Make it after restore. Use per_vm(uuid.uuid4) or an on_run callback for one per MicroVM, "
            "or call uuid.uuid4() inside the request handler for one per request.",
        ),
        Rule(
            "MVM002",
            "entropy-before-snapshot",
            "Bytes drawn from the OS random source before the snapshot are saved in it, "
            "so every MicroVM holds the same key, token or secret.",
            "Draw them after restore. Use per_vm(lambda: secrets.token_hex(16)) or an on_run callback for one value "
            "per MicroVM, or call secrets.token_hex() inside the handler for one per request. "
            "Load a key that every MicroVM must share from a secret store in an on_run callback.",
        ),
        Rule(
            "MVM003",
            "random-state-before-snapshot",
            "The state of a pseudo-random generator is saved in the snapshot, so every MicroVM restored from it "
            "draws the same numbers. The /run hook reseeds only the global random and numpy.random generators. "
            "Values drawn before /run and generators the app creates itself stay the same in every MicroVM, "
            "and /run overwrites a seed set at import.",
            "Use secrets or random.SystemRandom for tokens and ids. Create a generator of your own with "
            "per_vm(random.Random), or seed it in an on_run callback.",
        ),
        Rule(
            "MVM004",
            "clock-or-process-id-before-snapshot",
            "A time read before the snapshot is the build time in every MicroVM, and the process id and node id "
            "are the same in every MicroVM, so none of them can serve as a seed, an id or a start time.",
            "Read the clock in an on_run callback or in the handler, and make ids and seeds with secrets.",
        ),
        Rule(
            "MVM005",
            "tempfile-before-snapshot",
            "A temporary file or directory created before the snapshot has the same name and contents in every "
            "MicroVM, and the state of tempfile's name generator is saved too, so later names repeat across MicroVMs.",
            "Create it in a per_vm factory or an on_run callback, or per request.",
        ),
        Rule(
            "MVM006",
            "connection-before-snapshot",
            "The platform closes every outbound TCP connection to another host when a MicroVM runs or resumes, "
            "and a client made "
            "before the snapshot is shared by every MicroVM with its connection pool and whatever it resolved "
            "during the build, such as credentials.",
            "Open it in an on_run callback, which runs in every worker process after restore, and reopen it in an "
            "on_resume callback. A per_vm value does not fit a client, because per_vm values are sent to each "
            "worker and must be picklable.",
        ),
        Rule(
            "MVM007",
            "unique-value-cached-in-process",
            "A value kept for the life of the process is computed by the first call, and the first call can come "
            "before the snapshot (at import, while the app starts, or in a warm-up request), "
            "so every MicroVM would then return the same value.",
            "Replace the cache with per_vm(factory) for a picklable value such as a token, or with an on_run "
            "callback for a client or a connection. Both run once per MicroVM after /run. "
            "Or compute the value per request.",
        ),
        Rule(
            "MVM008",
            "invalid-suppression",
            "A suppression must name a known rule and give the reason why the shared value is safe, "
            "so that a reviewer can check it. This one suppresses nothing.",
            "Write it as '# microvm: ignore[MVM003] reason: <why the shared value is safe>'.",
        ),
    )
}

SUPPRESSION_RULE = "MVM008"

# Calls that generate or capture a value, by fully qualified name.
EXACT_CALLS: dict[str, str] = {
    **dict.fromkeys(("uuid.uuid1", "uuid.uuid4", "uuid.uuid6", "uuid.uuid7", "uuid.uuid8"), "MVM001"),
    **dict.fromkeys(
        (
            "os.urandom",
            "os.getrandom",
            "ssl.RAND_bytes",
            "django.core.management.utils.get_random_secret_key",
            "django.utils.crypto.get_random_string",
        ),
        "MVM002",
    ),
    **dict.fromkeys(
        (
            "time.time",
            "time.time_ns",
            "datetime.datetime.now",
            "datetime.datetime.utcnow",
            "datetime.datetime.today",
            "datetime.date.today",
            "os.getpid",
            "uuid.getnode",
        ),
        "MVM004",
    ),
    **dict.fromkeys(
        (
            "tempfile.mkdtemp",
            "tempfile.mkstemp",
            "tempfile.mktemp",
            "tempfile.TemporaryDirectory",
            "tempfile.NamedTemporaryFile",
            "tempfile.TemporaryFile",
        ),
        "MVM005",
    ),
    **dict.fromkeys(
        (
            "boto3.client",
            "boto3.resource",
            "boto3.Session",
            "boto3.session.Session",
            "botocore.session.get_session",
            "botocore.session.Session",
            "requests.Session",
            "requests.session",
            "httpx.Client",
            "httpx.AsyncClient",
            "urllib3.PoolManager",
            "urllib3.HTTPConnectionPool",
            "urllib3.HTTPSConnectionPool",
            "aiohttp.ClientSession",
            "http.client.HTTPConnection",
            "http.client.HTTPSConnection",
            "socket.socket",
            "socket.create_connection",
            "sqlite3.connect",
            "psycopg.connect",
            "psycopg.Connection.connect",
            "psycopg.AsyncConnection.connect",
            "psycopg_pool.ConnectionPool",
            "psycopg_pool.AsyncConnectionPool",
            "psycopg2.connect",
            "psycopg2.pool.SimpleConnectionPool",
            "psycopg2.pool.ThreadedConnectionPool",
            "pymysql.connect",
            "MySQLdb.connect",
            "mysql.connector.connect",
            "asyncpg.connect",
            "asyncpg.create_pool",
            "redis.Redis",
            "redis.StrictRedis",
            "redis.from_url",
            "redis.Redis.from_url",
            "redis.asyncio.Redis",
            "redis.asyncio.from_url",
            "pymongo.MongoClient",
            "motor.motor_asyncio.AsyncIOMotorClient",
            "sqlalchemy.create_engine",
            "sqlalchemy.ext.asyncio.create_async_engine",
            "smtplib.SMTP",
            "smtplib.SMTP_SSL",
            "ftplib.FTP",
            "pika.BlockingConnection",
            "grpc.insecure_channel",
            "grpc.secure_channel",
            "elasticsearch.Elasticsearch",
            "opensearchpy.OpenSearch",
        ),
        "MVM006",
    ),
}
# Every call under these modules generates a value, except the names in SAFE_CALLS.
PREFIX_CALLS: dict[str, str] = {"secrets.": "MVM002", "random.": "MVM003", "numpy.random.": "MVM003"}
# random.SystemRandom reads the OS source on every call, so an instance made before the snapshot is safe.
SAFE_CALLS = frozenset({"secrets.compare_digest", "secrets.SystemRandom", "random.SystemRandom"})


def rule_for(qualified: str | None) -> str | None:
    """Return the rule id for a call to a qualified name such as ``uuid.uuid4``, or None when it is safe."""
    if qualified is None or qualified in SAFE_CALLS:
        return None
    if qualified in EXACT_CALLS:
        return EXACT_CALLS[qualified]
    for prefix, rule_id in PREFIX_CALLS.items():
        if qualified.startswith(prefix):
            return rule_id
    return None

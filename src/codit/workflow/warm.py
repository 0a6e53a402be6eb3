"""Warm worker: run `codit` commands in processes forked from an interpreter that has already
imported torch, transformers, peft, TRL and lm-eval.

Those imports take 4 to 6 s of CPU in every new process, more than many tiny-world jobs
compute, and a local run pays them once per job. With CODIT_WARM=1 (the Snakefile sets it
for runs on this machine, never for cluster jobs) `codit` hands its command line, working
directory, environment and stdin/stdout/stderr to a server over a Unix socket. The server
forks a process that runs the command exactly as `codit` would have, and the client waits
and exits with that process's status.

How the forked job follows its client, so that Snakemake sees no difference:
- the client exits with the job's exit code, or kills itself with the signal that killed it;
- SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the client are passed on to the job's process
  group;
- a client that dies without passing anything on (SIGKILL, the OOM killer) takes its job
  with it: the server SIGKILLs the job's group when the client's connection closes, and a
  job whose server dies is killed by the kernel (parent-death signal).

One server per interpreter, working directory and environment: the hash of the three names
its socket, since libraries read settings such as HF_HOME or OMP_NUM_THREADS when they are
imported. A server exits after IDLE_SECONDS without jobs. If anything fails before a job
has started (no server yet, a server shutting down), the client runs the command itself and
starts a server in the background for the next one. Set CODIT_WARM=0 to turn it off.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import importlib
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

WARM_VARIABLE = "CODIT_WARM"
SERVER_FLAG = "--warm-server"  # `python -m codit --warm-server KEY` runs a server
# Where sockets, locks and server logs live (tests point it at a temporary folder).
DIRECTORY_VARIABLE = "CODIT_WARM_DIR"
IDLE_SECONDS = 60.0
# The imports that cost seconds; codit's own modules are imported by each job, so edits to
# them take effect at once.
PRELOAD = (
    "torch",
    "transformers",
    "transformers.models.llama.modeling_llama",
    "transformers.models.gpt2.modeling_gpt2",
    "peft",
    "trl",
    "trl.trainer.sft_trainer",
    "lm_eval",
    "lm_eval.evaluator",
    "lm_eval.tasks",
)
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Variables a shell changes between identical commands; they do not reach any import.
UNKEYED_VARIABLES = frozenset({"_", "SHLVL", "OLDPWD", "PWD"})
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux


def enabled() -> bool:
    """Whether `codit` should hand its command to a warm server (CODIT_WARM=1, on Linux: the
    server needs pidfds and the parent-death signal)."""
    return os.environ.get(WARM_VARIABLE) == "1" and sys.platform.startswith("linux")


def runtime_directory() -> Path:
    """The private folder of this user's servers (created 0700, refused if others can enter)."""
    base = os.environ.get(DIRECTORY_VARIABLE)
    if base:
        directory = Path(base)
    else:
        root = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        directory = Path(root) / f"codit-warm-{os.getuid()}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{directory} must belong to this user with mode 0700")
    return directory


def server_key(environment: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """The name of the server that may run a command from this interpreter, folder and
    environment; it also changes when a preloaded package or this module is reinstalled."""
    environment = dict(os.environ if environment is None else environment)
    digest = hashlib.sha256()
    digest.update(sys.executable.encode())
    digest.update(b"\0" + (cwd or os.getcwd()).encode())
    for name in sorted(set(environment) - UNKEYED_VARIABLES):
        digest.update(b"\0" + name.encode() + b"=" + environment[name].encode())
    for module in (*sorted({name.partition(".")[0] for name in PRELOAD}), "codit.workflow.warm"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            digest.update(b"\0" + f"{spec.origin}:{os.stat(spec.origin).st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


# --- the client: the `codit` command --------------------------------------------------------


def delegate(argv: list[str]) -> int | None:
    """Run the command line `argv` (sys.argv of `codit`) in a warm process: its exit code (a
    job killed by a signal kills this process with it), or None when no server took it and
    the caller must run it."""
    try:
        directory = runtime_directory()
        path = directory / f"{server_key()}.sock"
    except OSError:
        return None
    if len(str(path)) > MAX_SOCKET_PATH:
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        _start_server(directory, path.stem)
        return None
    with connection, connection.makefile("rb") as replies:
        request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "path": sys.path}
        payload = json.dumps(request).encode()
        message = len(payload).to_bytes(8, "big") + payload
        try:
            sent = socket.send_fds(connection, [message], [0, 1, 2])
            connection.sendall(message[sent:])
            started = replies.readline()
        except OSError:
            return None
        if not started.startswith(b"started "):
            return None  # the server closed before starting it: nothing ran, run it here
        with _forwarding_signals(connection):
            outcome = replies.readline().decode().strip()
    kind, _, number = outcome.partition(" ")
    if kind == "exit":
        return int(number)
    if kind == "signal":
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's cannot be set, nor needed
            signal.signal(int(number), signal.SIG_DFL)
        os.kill(os.getpid(), int(number))
        return 128 + int(number)
    print("codit: the warm worker running this command stopped before it did", file=sys.stderr)
    return 1


@contextlib.contextmanager
def _forwarding_signals(connection: socket.socket) -> Iterator[None]:
    """Pass termination signals on to the job instead of dying before it."""

    def forward(number: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            connection.sendall(f"signal {number}\n".encode())

    previous = {number: signal.signal(number, forward) for number in FORWARDED_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _start_server(directory: Path, key: str) -> None:
    """Start a server for `key` in the background, detached from this process's tree (a
    Snakemake benchmark of this job must not count it) and its output pipes."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        with open(directory / f"{key}.log", "ab") as log:
            subprocess.Popen(
                [sys.executable, "-m", "codit", SERVER_FLAG, key],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
    finally:
        os._exit(0)


# --- the server -----------------------------------------------------------------------------


class StartJob(BaseException):
    """Raised in a freshly forked job process to leave the server's frames behind: the job
    then runs at the top of the interpreter, and exits through its normal shutdown."""

    def __init__(self, request: dict, descriptors: list[int]) -> None:
        super().__init__()
        self.request = request
        self.descriptors = descriptors


def serve(key: str) -> None:
    """Preload the libraries, then fork one handler per connection until idle."""
    directory = runtime_directory()
    with open(directory / f"{key}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another server of this key is starting or running
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")  # who holds it: tests and users can stop a server
        lock.flush()
        _preload()
        _accept_until_idle(directory / f"{key}.sock", lock)


def _preload() -> None:
    _log(f"server {os.getpid()} preloading")
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError as error:  # a job that needs it will report it
            _log(f"cannot preload {module}: {error}")
    # Keep the preloaded objects out of the jobs' garbage collections: collecting them would
    # write to every shared page (copy-on-write), and a job's exit would take about 1 s.
    gc.freeze()


def _accept_until_idle(path: Path, lock: IO[str]) -> None:
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    _log(f"server {os.getpid()} ready")
    server_pid = os.getpid()
    handlers: set[int] = set()
    last_busy = time.monotonic()
    try:
        while handlers or time.monotonic() - last_busy < IDLE_SECONDS:
            for pid in list(handlers):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    handlers.discard(pid)
            if handlers:
                last_busy = time.monotonic()
            if not select.select([listener], [], [], 1.0)[0]:
                continue
            connection, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                listener.close()
                lock.close()  # the server keeps the lock; a handler must not outlive it
                _handle(connection)  # raises StartJob in the job process
                os._exit(0)
            connection.close()
            handlers.add(pid)
    finally:
        if os.getpid() == server_pid:
            # A client that connects now is refused and runs its command itself.
            path.unlink(missing_ok=True)
            listener.close()
            _log(f"server {server_pid} stopped")


def _handle(connection: socket.socket) -> None:
    """Receive one command, fork its job, report its exit status, follow the client's fate."""
    try:
        request, descriptors = _receive_request(connection)
    except (OSError, ValueError):
        return  # the client closes unanswered and runs the command itself
    handler_pid = os.getpid()
    job_pid = os.fork()
    if job_pid == 0:
        connection.close()
        _become_job_process(handler_pid)
        raise StartJob(request, descriptors)
    with contextlib.suppress(OSError):
        os.setpgid(job_pid, job_pid)  # also done by the job itself: whichever runs first
    for descriptor in descriptors:
        os.close(descriptor)
    started = time.monotonic()
    _log(f"job {job_pid} started: {' '.join(request['argv'])} (in {request['cwd']})")
    job = os.pidfd_open(job_pid)
    with contextlib.suppress(OSError):
        connection.sendall(f"started {job_pid}\n".encode())
    pending = b""
    while True:
        readable = select.select([connection, job], [], [])[0]
        if job in readable:
            _, status = os.waitpid(job_pid, 0)
            outcome = (
                f"signal {os.WTERMSIG(status)}"
                if os.WIFSIGNALED(status)
                else f"exit {os.WEXITSTATUS(status)}"
            )
            _log(f"job {job_pid}: {outcome} after {time.monotonic() - started:.1f} s")
            with contextlib.suppress(OSError):
                connection.sendall(f"{outcome}\n".encode())
            return
        try:
            data = connection.recv(256)
        except OSError:
            data = b""
        if not data:  # the client died without a word: the job dies as if killed with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job_pid, signal.SIGKILL)
            os.waitpid(job_pid, 0)
            _log(f"job {job_pid}: killed, its client is gone")
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            kind, _, number = line.decode().partition(" ")
            if kind == "signal" and int(number) in FORWARDED_SIGNALS:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job_pid, int(number))


def _receive_request(connection: socket.socket) -> tuple[dict, list[int]]:
    """The client's request (8-byte length, then JSON) and its stdin, stdout and stderr."""
    message, descriptors, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    if len(descriptors) != 3:
        raise OSError("a request without its three standard streams")

    def read_until(size: int) -> None:
        nonlocal message
        while len(message) < size:
            chunk = connection.recv(size - len(message))
            if not chunk:
                raise OSError("request cut short")
            message += chunk

    read_until(8)
    read_until(8 + int.from_bytes(message[:8], "big"))
    return json.loads(message[8:]), list(descriptors)


def _become_job_process(handler_pid: int) -> None:
    """Die with the handler, own a process group, and take default signal dispositions."""
    from codit.workflow.runtime import die_with_parent

    die_with_parent()
    if os.getppid() != handler_pid:  # the handler died before the line above
        os._exit(1)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def become_job(job: StartJob) -> None:
    """Become the client's `codit` process: its stdio, folder, environment, argv and path."""
    sys.stdout.flush()
    sys.stderr.flush()
    for target, descriptor in enumerate(job.descriptors):
        os.dup2(descriptor, target)
        os.close(descriptor)
    # sys.stdout and the library loggers that hold it write to fd 1, now the client's;
    # buffer it as a new process would for this target.
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    os.chdir(job.request["cwd"])
    os.environ.clear()
    os.environ.update(job.request["env"])
    sys.argv = list(job.request["argv"])
    sys.path[:] = job.request["path"]  # codit's modules resolve as in the client
    _reseed_numpy()


def _reseed_numpy() -> None:
    """numpy seeds its global generator from the OS at import; forked jobs would share one
    stream (Python's `random` reseeds itself after a fork)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(int.from_bytes(os.urandom(4), "big"))


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def serve_until_job(key: str) -> bool:
    """The server process's life (`python -m codit --warm-server KEY`): False when it ends,
    True in a forked job process that has become the client's command (its caller then runs
    that command, `codit.cli.run(sys.argv[1:])`)."""
    # `-m` put the working directory first on sys.path; a folder there must not shadow a
    # library.
    if sys.path and sys.path[0] == os.getcwd():
        del sys.path[0]
    try:
        serve(key)
    except StartJob as job:
        become_job(job)
        return True
    return False

"""Misuse that the type checker must reject: each line marked E is an error."""

from sysvipc import MessageQueue, SemaphoreSet, SharedMemory
from sysvipc import compat as sysv_ipc

q = MessageQueue()
q.send("a str is not bytes")  # E
q.receive(timeout="soon")  # E
s = SemaphoreSet()
s[0].acquire(n="1")  # E
shm = SharedMemory(size=10)
shm.write(123)  # E
count: str = len(q)  # E
mem = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX)
mem.key = 5  # E
count2: str = mem.number_attached  # E

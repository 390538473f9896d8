"""Misuse that the type checker must reject: each line marked E is an error."""

from sysvipc import MessageQueue, SemaphoreSet, SharedMemory

q = MessageQueue()
q.send("a str is not bytes")  # E
q.receive(timeout="soon")  # E
s = SemaphoreSet()
s[0].acquire(n="1")  # E
shm = SharedMemory(size=10)
shm.write(123)  # E
count: str = len(q)  # E

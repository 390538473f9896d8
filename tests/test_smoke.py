from sysvipc import lowlevel as ll


def test_roundtrip(msqid: int) -> None:
    ll.msgsnd(msqid, b"x", 3)
    assert ll.msgrcv(msqid, 10) == (b"x", 3)

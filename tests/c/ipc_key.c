/* ipc_key.c: the same key from a path in C and in Python, with ftok(3).
 *
 *   ipc_key PATH PROJ create   create a queue (mode 0640) under ftok(PATH, PROJ)
 *   ipc_key PATH PROJ open     open the existing queue under that key
 *
 * Prints "key=KEY id=ID mode=MODE uid=UID" (key in hex, mode in octal) from
 * the queue's msqid_ds.  PROJ is one character, as in ftok(path, 'A').
 *
 * Build: cc -O2 -Wall -o ipc_key ipc_key.c
 */
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>

int
main(int argc, char **argv)
{
    if (argc != 4 || strlen(argv[2]) != 1) {
        fprintf(stderr, "usage: ipc_key PATH PROJ create|open\n");
        return 2;
    }
    key_t key = ftok(argv[1], argv[2][0]);
    if (key == -1) {
        perror("ftok");
        return 1;
    }
    int flags =
        strcmp(argv[3], "create") == 0 ? IPC_CREAT | IPC_EXCL | 0640 : 0;
    int msqid = msgget(key, flags);
    struct msqid_ds ds;
    if (msqid == -1 || msgctl(msqid, IPC_STAT, &ds) == -1) {
        perror("msgget/msgctl");
        return 1;
    }
    printf("key=%#x id=%d mode=%o uid=%u\n", (unsigned)key, msqid,
           (unsigned)(ds.msg_perm.mode & 0777), (unsigned)ds.msg_perm.uid);
    return 0;
}

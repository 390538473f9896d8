/* shm_records.c: an array of C structs in a segment that Python sees as a
 * numpy structured array.
 *
 *   shm_records layout          print sizeof and offsetof of struct rec
 *   shm_records write SHMID N   fill records 0..N-1
 *   shm_records read SHMID N    attach read-only (SHM_RDONLY), print records
 *   shm_records poke SHMID      attach read-only and try to write: the
 *                               kernel kills the process with SIGSEGV
 *
 * Build: cc -O2 -Wall -o shm_records shm_records.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>
#include <unistd.h>

struct rec {
    int32_t id;  /* offset 0, then 4 bytes of padding: x is 8-aligned */
    double x;    /* offset 8 */
    char tag[8]; /* offset 16: NUL-padded, not NUL-terminated when full */
}; /* sizeof 24 */

static struct rec *
attach(const char *shmid, int flags)
{
    void *p = shmat(atoi(shmid), NULL, flags);
    if (p == (void *)-1) {
        perror("shmat");
        exit(1);
    }
    return p;
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "layout") == 0) {
        printf("sizeof=%zu id=%zu x=%zu tag=%zu\n", sizeof(struct rec),
               offsetof(struct rec, id), offsetof(struct rec, x),
               offsetof(struct rec, tag));
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "write") == 0) {
        struct rec *r = attach(argv[2], 0);
        for (int i = 0; i < atoi(argv[3]); i++) {
            r[i].id = 1000 + i;
            r[i].x = i * 1.5 - 3.25;
            char tag[16];
            int n = snprintf(tag, sizeof tag, "rec-%d", i);
            memset(r[i].tag, 0, sizeof r[i].tag);
            /* "rec-1000" fills all 8 bytes: no NUL then */
            memcpy(r[i].tag, tag, n < 8 ? (size_t)n : 8);
        }
        shmdt(r);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "read") == 0) {
        const struct rec *r = attach(argv[2], SHM_RDONLY);
        for (int i = 0; i < atoi(argv[3]); i++) /* %a: the exact double */
            printf("%d %a %.8s\n", r[i].id, r[i].x, r[i].tag);
        shmdt(r);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "poke") == 0) {
        struct rec *r = attach(argv[2], SHM_RDONLY);
        printf("attached read-only\n");
        fflush(stdout);
        r[0].id = 1; /* SIGSEGV: the mapping has no write permission */
        printf("wrote\n");
        return 0;
    }
    fprintf(stderr,
            "usage: shm_records layout | write|read SHMID N | poke SHMID\n");
    return 2;
}

/* sem_counter.c: a C process that shares a lock and a counter with Python.
 *
 *   sem_counter add SEMID SHMID N   N times: lock, counter += 1, unlock
 *   sem_counter hold SEMID          lock, print "held", sleep until killed
 *
 * The lock is semaphore 0 of the set (1 = free, 0 = held), taken and given
 * back with SEM_UNDO: exactly what Python's `with semset[0]:` does.  If the
 * process dies holding it, even by SIGKILL, the kernel undoes the -1.
 * The counter is the int64_t at offset 0 of the segment.
 *
 * Build: cc -O2 -Wall -o sem_counter sem_counter.c
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

static void
lock(int semid)
{
    struct sembuf op = {.sem_num = 0, .sem_op = -1, .sem_flg = SEM_UNDO};
    if (semop(semid, &op, 1) == -1)
        die("semop(lock)");
}

static void
unlock(int semid)
{
    struct sembuf op = {.sem_num = 0, .sem_op = +1, .sem_flg = SEM_UNDO};
    if (semop(semid, &op, 1) == -1)
        die("semop(unlock)");
}

int
main(int argc, char **argv)
{
    alarm(20); /* never outlive a test that went wrong */
    if (argc == 5 && strcmp(argv[1], "add") == 0) {
        int semid = atoi(argv[2]);
        volatile int64_t *counter = shmat(atoi(argv[3]), NULL, 0);
        if (counter == (void *)-1)
            die("shmat");
        for (long n = atol(argv[4]); n > 0; n--) {
            lock(semid);
            int64_t value = *counter; /* read, let others run, write: */
            sched_yield();            /* without the lock, updates get lost */
            *counter = value + 1;
            unlock(semid);
        }
        shmdt((void *)counter);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "hold") == 0) {
        lock(atoi(argv[2]));
        printf("held\n");
        fflush(stdout);
        pause(); /* until a signal ends the process */
        return 0;
    }
    fprintf(stderr, "usage: sem_counter add SEMID SHMID N | hold SEMID\n");
    return 2;
}

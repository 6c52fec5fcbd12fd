/* test_fdtab: the fd -> model file table (bridge_fdtab.c). */
#include <pthread.h>

#include "bridge.h"
#include "check.h"

static volatile int stop;

static void *
reader(void *arg)
{
	long bad;
	int f;

	(void)arg;
	bad = 0;
	while (!stop) {
		/* Slot 100 is either empty or file 42: never anything else. */
		f = fdtab_lookup(100);
		if (f != -1 && f != 42)
			bad++;
	}
	return ((void *)bad);
}

int
main(void)
{
	pthread_t t[4];
	uint64_t rights[2], some[2] = { (1ULL << 57) | 1, (1ULL << 58) | 0x80 };
	long nioctls;
	void *bad;
	int i;

	CHECK_EQ(fdtab_lookup(3), -1);
	CHECK_EQ(fdtab_lookup(-1), -1);
	CHECK_EQ(fdtab_lookup(FDTAB_SIZE), -1);
	CHECK_EQ(fdtab_insert(3, 0), 0);
	CHECK_EQ(fdtab_lookup(3), 0);
	CHECK_EQ(fdtab_insert(FDTAB_SIZE - 1, 7), 0);
	CHECK_EQ(fdtab_lookup(FDTAB_SIZE - 1), 7);
	CHECK_EQ(fdtab_insert(FDTAB_SIZE, 1), -1);
	CHECK_EQ(fdtab_insert(-3, 1), -1);
	CHECK_EQ(fdtab_remove(3), 0);
	CHECK_EQ(fdtab_lookup(3), -1);
	CHECK_EQ(fdtab_remove(3), -1);
	CHECK_EQ(fdtab_remove(FDTAB_SIZE - 1), 7);

	/* Recorded capsicum limits of non-vmm fds. */
	CHECK_EQ(fdtab_recorded(5, rights, &nioctls), 0);
	fdtab_record_rights(5, some);
	CHECK_EQ(fdtab_recorded(5, rights, &nioctls), 1);
	CHECK_EQ(rights[0], some[0]);
	CHECK_EQ(rights[1], some[1]);
	CHECK_EQ(nioctls, -1);
	fdtab_record_ioctls(5, 0);
	CHECK_EQ(fdtab_recorded(5, rights, &nioctls), 1);
	CHECK_EQ(nioctls, 0);
	fdtab_forget(5);
	CHECK_EQ(fdtab_recorded(5, rights, &nioctls), 0);

	/* Lookups race inserts and removes without a lock. */
	for (i = 0; i < 4; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, reader, NULL), 0);
	for (i = 0; i < 200000; i++) {
		fdtab_insert(100, 42);
		fdtab_remove(100);
	}
	stop = 1;
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], &bad);
		CHECK_EQ((long)bad, 0);
	}
	return (check_done("test_fdtab"));
}

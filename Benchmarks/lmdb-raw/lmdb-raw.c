/* The ceiling for the engine benchmark: liblmdb called directly, records appended with MDB_APPEND in
 * transactions of `batch` records, with fsync per commit (default) or MDB_NOSYNC.
 * usage: lmdb-raw DIR COUNT RECORD_BYTES BATCH fsync|nosync
 * prints one JSON line. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <stdint.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define CHECK(x) do { int rc_ = (x); if (rc_) { fprintf(stderr, "%s: %s\n", #x, mdb_strerror(rc_)); return 1; } } while (0)

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s DIR COUNT RECORD_BYTES BATCH fsync|nosync\n", argv[0]); return 2; }
    const char *dir = argv[1];
    long count = atol(argv[2]), size = atol(argv[3]), batch = atol(argv[4]);
    int nosync = strcmp(argv[5], "nosync") == 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/raw.mdb", dir);
    unlink(path);
    MDB_env *env;
    CHECK(mdb_env_create(&env));
    CHECK(mdb_env_set_mapsize(env, (size_t)(count * (size + 64)) * 2 + (64 << 20)));
    CHECK(mdb_env_open(env, path, MDB_NOSUBDIR | (nosync ? MDB_NOSYNC : 0), 0644));
    MDB_dbi dbi;
    MDB_txn *txn;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK(mdb_dbi_open(txn, NULL, 0, &dbi));
    CHECK(mdb_txn_commit(txn));
    char *value = malloc(size);
    memset(value, 0xAB, size);
    double start = now();
    for (long i = 0; i < count;) {
        CHECK(mdb_txn_begin(env, NULL, 0, &txn));
        for (long j = 0; j < batch && i < count; j++, i++) {
            uint64_t key = __builtin_bswap64((uint64_t)i + 1);
            MDB_val k = {8, &key}, v = {(size_t)size, value};
            CHECK(mdb_put(txn, dbi, &k, &v, MDB_APPEND));
        }
        CHECK(mdb_txn_commit(txn));
    }
    double elapsed = now() - start;
    printf("{\"bench\":\"raw_lmdb_append\",\"sync\":\"%s\",\"records\":%ld,\"record_bytes\":%ld,\"batch\":%ld,\"records_per_s\":%.0f}\n",
           nosync ? "nosync" : "fsync", count, size, batch, count / elapsed);
    mdb_env_close(env);
    unlink(path);
    snprintf(path, sizeof path, "%s/raw.mdb-lock", dir);
    unlink(path);
    free(value);
    return 0;
}

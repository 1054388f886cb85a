/* keyringrs from C: what a desktop application writes.
 *
 *   cc example.c $(pkg-config --cflags --libs keyringrs) -o example
 *   ./example [STORE]            (STORE: default ~/.local/share/keyringrs)
 *
 * The store must exist; if it is locked, the password is read from stdin (one line). The login
 * session normally has it unlocked already (pam_keyringrs). */
#include <keyringrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, keyringrs_status st) {
    fprintf(stderr, "example: %s: %s (status %d)\n", what, keyringrs_last_error(), (int)st);
    return (int)st;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : NULL;
    keyringrs_store *store = NULL;
    keyringrs_status st = keyringrs_open(path, &store);
    if (st != KEYRINGRS_OK) return fail("open", st);

    bool locked = true;
    if ((st = keyringrs_is_locked(store, &locked)) != KEYRINGRS_OK) return fail("is_locked", st);
    if (locked) {
        char password[256];
        if (!fgets(password, sizeof password, stdin)) return fail("read password", KEYRINGRS_INVALID_INPUT);
        size_t n = strcspn(password, "\n");
        st = keyringrs_unlock(store, (const uint8_t *)password, n, 0);
        keyringrs_wipe((uint8_t *)password, sizeof password);
        if (st != KEYRINGRS_OK) return fail("unlock", st);
    }

    const char *token = "ghp_example-token";
    st = keyringrs_set(store, "github.com", "alice", (const uint8_t *)token, strlen(token));
    if (st != KEYRINGRS_OK) return fail("set", st);

    /* 1. Into the caller's buffer (KEYRINGRS_BUFFER_TOO_SMALL tells the size needed). */
    uint8_t buf[64];
    size_t len = 0;
    st = keyringrs_get(store, "github.com", "alice", buf, sizeof buf, &len);
    if (st != KEYRINGRS_OK) return fail("get", st);
    printf("get: %.*s\n", (int)len, (const char *)buf);
    keyringrs_wipe(buf, sizeof buf);

    /* 2. Allocated by the library, wiped and freed by keyringrs_secret_free. */
    uint8_t *secret = NULL;
    st = keyringrs_get_alloc(store, "github.com", "alice", &secret, &len);
    if (st != KEYRINGRS_OK) return fail("get_alloc", st);
    printf("get_alloc: %zu bytes\n", len);
    keyringrs_secret_free(secret, len);

    keyringrs_list *list = NULL;
    if ((st = keyringrs_list_open(store, &list)) != KEYRINGRS_OK) return fail("list", st);
    const char *service, *username;
    while (keyringrs_list_next(list, &service, &username)) printf("list: %s\t%s\n", service, username);
    keyringrs_list_free(list);

    st = keyringrs_get(store, "github.com", "nobody", buf, sizeof buf, &len);
    printf("missing: %s\n", st == KEYRINGRS_NO_ENTRY ? "KEYRINGRS_NO_ENTRY" : "unexpected");

    if ((st = keyringrs_delete(store, "github.com", "alice")) != KEYRINGRS_OK) return fail("delete", st);
    if ((st = keyringrs_lock(store)) != KEYRINGRS_OK) return fail("lock", st);
    st = keyringrs_get(store, "github.com", "alice", buf, sizeof buf, &len);
    printf("after lock: %s\n", st == KEYRINGRS_LOCKED ? "KEYRINGRS_LOCKED" : "unexpected");

    keyringrs_close(store);
    return 0;
}

/* pam-authtok: a test PAM module standing for systemd's pam_systemd_loadkey, which puts the
 * LUKS passphrase read at boot into PAM_AUTHTOK for an autologin, without a prompt.
 *
 *   auth required pam-authtok.so token=HEX
 *
 * Built by tests/pam.rs; never installed.
 */
#define PAM_SM_AUTH
#include <security/pam_modules.h>
#include <stdio.h>
#include <string.h>

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)flags;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "token=", 6) == 0) {
            const char *hex = argv[i] + 6;
            char tok[256];
            size_t n = strlen(hex) / 2;
            if (n >= sizeof tok) return PAM_AUTH_ERR;
            for (size_t j = 0; j < n; j++) {
                unsigned v;
                if (sscanf(hex + 2 * j, "%2x", &v) != 1) return PAM_AUTH_ERR;
                tok[j] = (char)v;
            }
            tok[n] = 0;
            int rc = pam_set_item(pamh, PAM_AUTHTOK, tok);
            memset(tok, 0, sizeof tok);
            return rc;
        }
    }
    return PAM_AUTH_ERR;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    (void)pamh; (void)flags; (void)argc; (void)argv;
    return PAM_SUCCESS;
}

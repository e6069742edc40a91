/*
 * Checks --tls-cert and --tls-key before lws sees them: lws 4.1 logs a
 * certificate it cannot use and goes on serving without it, which would
 * answer in plaintext where TLS was asked for. Failing at start-up is the
 * honest answer.
 */
#include "gw_server.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

int gw_tls_check(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int rc = -1;
    FILE *f = fopen(cert_file, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", cert_file, strerror(errno));
        goto out;
    }
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!cert) {
        snprintf(err, errlen, "%s holds no PEM certificate", cert_file);
        goto out;
    }
    if (!(f = fopen(key_file, "r"))) {
        snprintf(err, errlen, "cannot read %s: %s", key_file, strerror(errno));
        goto out;
    }
    key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!key) {
        snprintf(err, errlen, "%s holds no PEM private key", key_file);
        goto out;
    }
    if (X509_check_private_key(cert, key) != 1) {
        snprintf(err, errlen, "the key in %s does not match the certificate in %s", key_file,
                 cert_file);
        goto out;
    }
    rc = 0;
out:
    ERR_clear_error();
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

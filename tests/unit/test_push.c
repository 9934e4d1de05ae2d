/* test_push.c — offline push's pure pieces (push_internal.h): payload precedence and
 * template variables, who is skipped, the per-platform view, the APNs and FCM bodies,
 * JWT signing (ES256 with raw r||s, RS256) checked with OpenSSL's verify, the backoff, and
 * the configuration the hub refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "base64.h"
#include "config.h"
#include "err.h"
#include "push_internal.h"

static push_request_t req_of(const char *hook, const char *push_data) {
  push_request_t r = {.from = "Tom",
                      .cid = "5789a33a1b8694ad267d8040",
                      .timestamp = 1472200796764,
                      .msg_id = "m1",
                      .hook_payload = hook,
                      .push_data = push_data};
  return r;
}

static char *dump(const json_t *j) { return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS); }

static void assert_json(const json_t *j, const char *want) {
  char *s = dump(j);
  json_t *w = json_loads(want, 0, NULL);
  assert_non_null(w);
  char *ws = dump(w);
  assert_string_equal(s, ws);
  free(s);
  free(ws);
  json_decref(w);
}

/* §10: hook pushMessage > pushData > template; none of them: no push */
static void test_precedence(void **state) {
  json_t *tmpl = json_loads("{\"alert\":\"new message in ${convId}\",\"badge\":\"Increment\"}", 0, NULL);
  struct {
    const char *hook, *push_data;
    int with_tmpl;
    const char *want; /* NULL: no payload */
  } cases[] = {
      {"{\"alert\":\"from hook\"}", "{\"alert\":\"from pushData\"}", 1, "{\"alert\":\"from hook\"}"},
      /* the LeanCloud samples return JSON.stringify(obj): a JSON string holding an object */
      {"\"{\\\"alert\\\":\\\"stringified\\\",\\\"sound\\\":\\\"default\\\"}\"", NULL, 1,
       "{\"alert\":\"stringified\",\"sound\":\"default\"}"},
      {"\"plain words\"", "{\"alert\":\"from pushData\"}", 1, "{\"alert\":\"plain words\"}"},
      {NULL, "{\"alert\":\"from pushData\",\"x\":1}", 1, "{\"alert\":\"from pushData\",\"x\":1}"},
      {"\"\"", "{\"alert\":\"from pushData\"}", 1, "{\"alert\":\"from pushData\"}"}, /* empty: not given */
      {"{}", "{\"alert\":\"from pushData\"}", 1, "{\"alert\":\"from pushData\"}"},
      {NULL, "not json at all", 1, "{\"alert\":\"not json at all\"}"},
      {NULL, NULL, 1, "{\"alert\":\"new message in 5789a33a1b8694ad267d8040\",\"badge\":\"Increment\"}"},
      {NULL, "", 1, "{\"alert\":\"new message in 5789a33a1b8694ad267d8040\",\"badge\":\"Increment\"}"},
      {NULL, NULL, 0, NULL},
      {NULL, "[1,2]", 0, NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    push_request_t r = req_of(cases[i].hook, cases[i].push_data);
    json_t *d = push_resolve(cases[i].with_tmpl ? tmpl : NULL, &r, 1700000000);
    if (!cases[i].want) {
      assert_null(d);
      continue;
    }
    assert_non_null(d);
    assert_json(d, cases[i].want);
    json_decref(d);
  }
  /* the template itself is not touched */
  assert_string_equal(json_string_value(json_object_get(tmpl, "alert")), "new message in ${convId}");
  json_decref(tmpl);
}

static void test_template_variables(void **state) {
  json_t *t = json_loads("{\"alert\":{\"title\":\"${fromClientId}\",\"body\":\"${fromClientId} in ${convId} at "
                         "${timestamp}\"},\"list\":[\"${convId}\",1,{\"deep\":\"${timestamp}${timestamp}\"}],"
                         "\"keep\":\"${unknown} and $ and ${\",\"n\":5}",
                         0, NULL);
  push_fill_template(t, "C1", "Tom", 1700000000);
  assert_json(t, "{\"alert\":{\"title\":\"Tom\",\"body\":\"Tom in C1 at 1700000000\"},"
                 "\"list\":[\"C1\",1,{\"deep\":\"17000000001700000000\"}],"
                 "\"keep\":\"${unknown} and $ and ${\",\"n\":5}");
  json_decref(t);
  /* a value with quotes stays valid JSON: substitution is on values, not on the text */
  t = json_loads("{\"alert\":\"${fromClientId}\"}", 0, NULL);
  push_fill_template(t, "C1", "a\"b\\c", 1);
  assert_string_equal(json_string_value(json_object_get(t, "alert")), "a\"b\\c");
  json_decref(t);
}

/* muted members are skipped unless forced; the sender never gets its own push */
static void test_recipients(void **state) {
  char *to[] = {"Jerry", "Tom", "Spike", "Tyke", "Jerry", ""};
  char *muted[] = {"Tyke", "Jerry"}; /* not sorted on purpose */
  push_request_t r = req_of(NULL, NULL);
  r.to = to;
  r.nto = 6;
  r.muted = muted;
  r.nmuted = 2;
  const char *out[6];
  size_t skipped = 99;
  size_t n = push_recipients(&r, out, &skipped);
  assert_int_equal(n, 1);
  assert_string_equal(out[0], "Spike");
  assert_int_equal(skipped, 3); /* Jerry twice, Tyke */
  r.force = 1;
  n = push_recipients(&r, out, &skipped);
  assert_int_equal(n, 3);
  assert_string_equal(out[0], "Jerry");
  assert_string_equal(out[1], "Spike");
  assert_string_equal(out[2], "Tyke");
  assert_int_equal(skipped, 0);
  r.force = 0;
  r.nmuted = 0;
  assert_int_equal(push_recipients(&r, out, NULL), 3);
}

static void test_platform_data(void **state) {
  json_t *d =
      json_loads("{\"alert\":\"generic\",\"_profile\":\"dev\",\"_apns_team_id\":\"T\","
                 "\"ios\":{\"alert\":\"for iOS\",\"badge\":3},\"android\":{\"title\":\"T\",\"alert\":\"for Android\"}}",
                 0, NULL);
  json_t *ios = push_platform_data(d, "ios");
  assert_json(ios, "{\"alert\":\"for iOS\",\"badge\":3,\"_profile\":\"dev\",\"_apns_team_id\":\"T\"}");
  json_t *android = push_platform_data(d, "android");
  assert_json(android, "{\"title\":\"T\",\"alert\":\"for Android\",\"_profile\":\"dev\",\"_apns_team_id\":\"T\"}");
  json_t *web = push_platform_data(d, "web");
  assert_json(web, "{\"alert\":\"generic\",\"_profile\":\"dev\",\"_apns_team_id\":\"T\"}");
  json_decref(ios);
  json_decref(android);
  json_decref(web);
  json_decref(d);
}

static void test_apns_body(void **state) {
  json_t *d = json_loads("{\"alert\":{\"title\":\"Tom\",\"body\":\"hi\"},\"badge\":\"Increment\",\"sound\":\"default\","
                         "\"category\":\"MSG\",\"thread-id\":\"C1\",\"content-available\":1,\"convId\":\"C1\","
                         "\"_profile\":\"dev\",\"_apns_team_id\":\"T\",\"nested\":{\"a\":[1]}}",
                         0, NULL);
  char *s = push_apns_body(d, 7);
  json_t *b = json_loads(s, 0, NULL);
  assert_json(b, "{\"aps\":{\"alert\":{\"title\":\"Tom\",\"body\":\"hi\"},\"badge\":7,\"sound\":\"default\","
                 "\"category\":\"MSG\",\"thread-id\":\"C1\",\"content-available\":1},"
                 "\"convId\":\"C1\",\"nested\":{\"a\":[1]}}");
  free(s);
  json_decref(b);
  json_decref(d);
  d = json_loads("{\"alert\":\"hello\",\"badge\":2}", 0, NULL);
  s = push_apns_body(d, 99);
  b = json_loads(s, 0, NULL);
  assert_json(b, "{\"aps\":{\"alert\":\"hello\",\"badge\":2}}");
  free(s);
  json_decref(b);
  json_decref(d);
}

static void test_fcm_body(void **state) {
  json_t *d = json_loads("{\"alert\":\"hello\",\"title\":\"Tom\",\"badge\":\"Increment\",\"sound\":\"ding\","
                         "\"convId\":\"C1\",\"n\":5,\"o\":{\"a\":true},\"_profile\":\"dev\"}",
                         0, NULL);
  char *s = push_fcm_body(d, "tok1");
  json_t *b = json_loads(s, 0, NULL);
  assert_json(b, "{\"message\":{\"token\":\"tok1\",\"notification\":{\"title\":\"Tom\",\"body\":\"hello\"},"
                 "\"data\":{\"sound\":\"ding\",\"convId\":\"C1\",\"n\":\"5\",\"o\":\"{\\\"a\\\":true}\"},"
                 "\"android\":{\"ttl\":\"604800s\",\"notification\":{\"sound\":\"ding\"}}}}");
  free(s);
  json_decref(b);
  json_decref(d);
  d = json_loads("{\"alert\":{\"title\":\"T\",\"body\":\"B\"}}", 0, NULL);
  s = push_fcm_body(d, "tok2");
  b = json_loads(s, 0, NULL);
  assert_json(b, "{\"message\":{\"token\":\"tok2\",\"notification\":{\"title\":\"T\",\"body\":\"B\"},\"data\":{},"
                 "\"android\":{\"ttl\":\"604800s\"}}}");
  free(s);
  json_decref(b);
  json_decref(d);
  d = json_loads("{\"alert\":\"quiet\",\"silent\":true}", 0, NULL); /* data only: the app shows it */
  s = push_fcm_body(d, "tok3");
  b = json_loads(s, 0, NULL);
  assert_json(b, "{\"message\":{\"token\":\"tok3\",\"data\":{\"alert\":\"quiet\"},\"android\":{\"ttl\":\"604800s\"}}}");
  free(s);
  json_decref(b);
  json_decref(d);
}

/* Splits a JWT, checks header and claims, returns the signed part's length and the
 * decoded signature. */
static size_t jwt_parts(const char *jwt, const char *want_header, const char *want_claims, uint8_t *sig,
                        size_t *siglen) {
  const char *d1 = strchr(jwt, '.');
  assert_non_null(d1);
  const char *d2 = strchr(d1 + 1, '.');
  assert_non_null(d2);
  assert_null(strchr(d2 + 1, '.'));
  assert_null(strchr(jwt, '='));
  uint8_t buf[1024];
  long n = base64_decode(jwt, (size_t)(d1 - jwt), buf);
  assert_true(n > 0);
  buf[n] = 0;
  assert_string_equal((char *)buf, want_header);
  n = base64_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf);
  assert_true(n > 0);
  buf[n] = 0;
  assert_string_equal((char *)buf, want_claims);
  n = base64_decode(d2 + 1, strlen(d2 + 1), sig);
  assert_true(n > 0);
  *siglen = (size_t)n;
  return (size_t)(d2 - jwt);
}

static int verify(EVP_PKEY *key, const uint8_t *msg, size_t n, const uint8_t *sig, size_t siglen) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok =
      EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 && EVP_DigestVerify(ctx, sig, siglen, msg, n) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

static void test_jwt_es256(void **state) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  assert_non_null(key);
  const char *h = "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}", *c = "{\"iss\":\"DEF123GHIJ\",\"iat\":1437179036}";
  for (int round = 0; round < 20; round++) { /* r or s with leading zero bytes must still be 32 bytes */
    char *jwt = NULL;
    assert_int_equal(push_jwt_sign(key, "ES256", h, c, &jwt), 0);
    uint8_t sig[256];
    size_t siglen;
    size_t signed_len = jwt_parts(jwt, h, c, sig, &siglen);
    assert_int_equal(siglen, 64); /* raw r||s, not DER */
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    uint8_t *der = NULL;
    int derlen = i2d_ECDSA_SIG(es, &der);
    assert_true(verify(key, (const uint8_t *)jwt, signed_len, der, (size_t)derlen));
    jwt[3] ^= 1; /* a changed header no longer verifies */
    assert_false(verify(key, (const uint8_t *)jwt, signed_len, der, (size_t)derlen));
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    free(jwt);
  }
  /* an RSA key is no ES256 key */
  EVP_PKEY *rsa = EVP_RSA_gen(2048);
  char *jwt = NULL;
  assert_int_equal(push_jwt_sign(rsa, "ES256", h, c, &jwt), TERN_EINVAL);
  assert_int_equal(push_jwt_sign(key, "RS256", h, c, &jwt), TERN_EINVAL);
  assert_int_equal(push_jwt_sign(key, "HS256", h, c, &jwt), TERN_EINVAL);
  assert_null(jwt);
  EVP_PKEY_free(rsa);
  /* a PEM round trip, as push reads the .p8 file */
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL);
  char *pem;
  long pl = BIO_get_mem_data(bio, &pem);
  EVP_PKEY *back = push_pem_key(pem, (size_t)pl);
  assert_non_null(back);
  assert_int_equal(EVP_PKEY_eq(back, key), 1);
  assert_null(push_pem_key("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", 60));
  EVP_PKEY_free(back);
  BIO_free(bio);
  EVP_PKEY_free(key);
}

static void test_jwt_rs256(void **state) {
  EVP_PKEY *key = EVP_RSA_gen(2048);
  const char *h = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
             *c = "{\"iss\":\"svc@p.iam.gserviceaccount.com\",\"scope\":\"s\",\"aud\":\"a\",\"iat\":1,\"exp\":3601}";
  char *jwt = NULL;
  assert_int_equal(push_jwt_sign(key, "RS256", h, c, &jwt), 0);
  uint8_t sig[512];
  size_t siglen;
  size_t signed_len = jwt_parts(jwt, h, c, sig, &siglen);
  assert_int_equal(siglen, 256);
  assert_true(verify(key, (const uint8_t *)jwt, signed_len, sig, siglen));
  free(jwt);
  EVP_PKEY_free(key);
}

static void test_backoff(void **state) {
  assert_int_equal(push_backoff_ms(1000, 1, 0), 1000);
  assert_int_equal(push_backoff_ms(1000, 2, 0), 2000);
  assert_int_equal(push_backoff_ms(1000, 4, 0), 8000);
  assert_int_equal(push_backoff_ms(1000, 30, 0), 600000); /* capped at 10 minutes */
  for (int i = 0; i < 50; i++) {
    uint64_t ms = push_backoff_ms(100, 3, 1);
    assert_true(ms >= 400 && ms <= 500);
  }
  assert_int_equal(push_outcome_of(200), PUSH_OK);
  assert_int_equal(push_outcome_of(204), PUSH_OK);
  assert_int_equal(push_outcome_of(0), PUSH_RETRY);
  assert_int_equal(push_outcome_of(429), PUSH_RETRY);
  assert_int_equal(push_outcome_of(503), PUSH_RETRY);
  assert_int_equal(push_outcome_of(400), PUSH_FAIL);
  assert_int_equal(push_outcome_of(403), PUSH_FAIL);
}

/* what the hub refuses at start-up, so a typo fails loudly instead of pushing nothing */
static void test_hub_config(void **state) {
  tern_config_t cfg;
  config_defaults(&cfg);
  char err[200], dir[] = "/tmp/tern-push-unit-XXXXXX";
  assert_non_null(mkdtemp(dir));
  assert_int_equal(config_set(&cfg, "data_dir", dir, err, sizeof err), 0);
  push_hub_t *hub = (push_hub_t *)1;
  assert_int_equal(push_hub_new(&cfg, &hub), 0); /* push_provider = none */
  assert_null(hub);
  const struct {
    const char *opts[3][2];
    int rc;
  } cases[] = {
      {{{"push_provider", "carrier-pigeon"}}, TERN_ECONFIG},
      {{{"push_provider", "webhook"}}, TERN_ECONFIG}, /* no URL */
      {{{"push_provider", "webhook"}, {"push_webhook_url", "ftp://x"}}, TERN_ECONFIG},
      {{{"push_provider", "webhook"}, {"push_webhook_url", "http://127.0.0.1:1/"}, {"push_template", "{nope"}},
       TERN_ECONFIG},
      {{{"push_provider", "webhook"}, {"push_webhook_url", "http://127.0.0.1:1/"}, {"push_template", "[1]"}},
       TERN_ECONFIG},
      {{{"push_provider", "apns"}, {"apns_key_path", "/nonexistent.p8"}}, TERN_ECONFIG},
      {{{"push_provider", "fcm"}, {"fcm_credentials_path", "/nonexistent.json"}}, TERN_ECONFIG},
      {{{"push_provider", "webhook, webhook"},
        {"push_webhook_url", "http://127.0.0.1:1/"},
        {"push_template", "{\"a\":1}"}},
       0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tern_config_t c;
    config_defaults(&c);
    assert_int_equal(config_set(&c, "data_dir", dir, err, sizeof err), 0);
    for (int k = 0; k < 3 && cases[i].opts[k][0]; k++)
      assert_int_equal(config_set(&c, cases[i].opts[k][0], cases[i].opts[k][1], err, sizeof err), 0);
    hub = NULL;
    assert_int_equal(push_hub_new(&c, &hub), cases[i].rc);
    if (cases[i].rc == 0) {
      assert_non_null(hub);
      assert_int_equal(hub->nproviders, 1);
      buf_t m = BUF_INIT;
      push_metrics(hub, &m);
      assert_non_null(strstr(buf_cstr(&m), "tern_push_requests_total{provider=\"webhook\"} 0"));
      buf_free(&m);
    } else {
      assert_null(hub);
    }
    push_hub_free(hub);
    config_free(&c);
  }
  char path[128];
  snprintf(path, sizeof path, "%s/push-dead-letter.jsonl", dir);
  unlink(path);
  rmdir(dir);
  config_free(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_precedence), cmocka_unit_test(test_template_variables),
      cmocka_unit_test(test_recipients), cmocka_unit_test(test_platform_data),
      cmocka_unit_test(test_apns_body),  cmocka_unit_test(test_fcm_body),
      cmocka_unit_test(test_jwt_es256),  cmocka_unit_test(test_jwt_rs256),
      cmocka_unit_test(test_backoff),    cmocka_unit_test(test_hub_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

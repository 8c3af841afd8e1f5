/* kseal-testenv's probe: a workload that reads a Secret the way apps do and
 * reports what it sees, as SHA-256 digests only. Built with
 * `gcc -Os -static` like the pause program (no registry is reachable).
 *
 * Environment:
 *   PROBE_OUT   directory to report into (a hostPath volume the test reads;
 *               default /reports)
 *   PROBE_ENV   name of the environment variable to digest (optional)
 *   PROBE_FILE  path of the file to digest, read again every second
 *               (a Secret volume's file follows the Secret; optional)
 *   POD_NAME, POD_UID  from the downward API
 *
 * Every second it writes PROBE_OUT/POD_NAME (atomically: a temp file, then
 * rename) as `key=value` lines:
 *   pod=NAME  uid=UID  started=UNIX-SECONDS  now=UNIX-SECONDS
 *   env=SHA256-HEX|unset  file=SHA256-HEX|unreadable
 * and prints a line to stdout when a digest changes. The values themselves
 * are never printed or written anywhere. Exits on SIGINT/SIGTERM. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping = 0;
static void stop(int sig) { (void)sig; stopping = 1; }

/* SHA-256 (FIPS 180-4). */
typedef struct {
  uint32_t h[8];
  uint64_t len;
  unsigned char buf[64];
  size_t used;
} sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void block(sha256 *s, const unsigned char *p) {
  uint32_t w[64], a, b, c, d, e, f, g, h;
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
  e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
                  ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
                  ((a & b) ^ (a & c) ^ (b & c));
    h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
  s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha_init(sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                 0xa54ff53a, 0x510e527f, 0x9b05688c,
                                 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->len = 0;
  s->used = 0;
}

static void sha_update(sha256 *s, const unsigned char *p, size_t n) {
  s->len += n;
  while (n > 0) {
    size_t take = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->buf + s->used, p, take);
    s->used += take, p += take, n -= take;
    if (s->used == 64) {
      block(s, s->buf);
      s->used = 0;
    }
  }
}

/* Writes 64 hex digits and a NUL to out; wipes the state. */
static void sha_hex(sha256 *s, char out[65]) {
  uint64_t bits = s->len * 8;
  unsigned char pad = 0x80, zero = 0, len[8];
  sha_update(s, &pad, 1);
  while (s->used != 56) sha_update(s, &zero, 1);
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha_update(s, len, 8);
  for (int i = 0; i < 8; i++)
    snprintf(out + 8 * i, 9, "%08x", (unsigned)s->h[i]);
  memset(s, 0, sizeof *s);
}

/* The digest of the file at path, or "unreadable". */
static void file_digest(const char *path, char out[65]) {
  FILE *f = path && *path ? fopen(path, "rb") : NULL;
  if (!f) {
    snprintf(out, 65, "unreadable");
    return;
  }
  sha256 s;
  unsigned char buf[4096];
  size_t n;
  sha_init(&s);
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha_update(&s, buf, n);
  int failed = ferror(f);
  fclose(f);
  memset(buf, 0, sizeof buf);
  if (failed) {
    memset(&s, 0, sizeof s);
    snprintf(out, 65, "unreadable");
    return;
  }
  sha_hex(&s, out);
}

static void env_digest(const char *name, char out[65]) {
  const char *value = name && *name ? getenv(name) : NULL;
  if (!value) {
    snprintf(out, 65, "unset");
    return;
  }
  sha256 s;
  sha_init(&s);
  sha_update(&s, (const unsigned char *)value, strlen(value));
  sha_hex(&s, out);
}

static const char *env_or(const char *name, const char *fallback) {
  const char *v = getenv(name);
  return v && *v ? v : fallback;
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  const char *dir = env_or("PROBE_OUT", "/reports");
  const char *pod = env_or("POD_NAME", "unknown");
  const char *uid = env_or("POD_UID", "unknown");
  const char *env_name = getenv("PROBE_ENV");
  const char *file = getenv("PROBE_FILE");
  long started = (long)time(NULL);
  char path[512], tmp[512], env_hex[65], file_hex[65];
  char last_env[65] = "", last_file[65] = "";
  if (snprintf(path, sizeof path, "%s/%s", dir, pod) >= (int)sizeof path ||
      snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, pod) >= (int)sizeof tmp) {
    fprintf(stderr, "probe: path too long\n");
    return 2;
  }
  printf("kseal-testenv probe: pod %s, reporting to %s\n", pod, path);
  fflush(stdout);

  while (!stopping) {
    env_digest(env_name, env_hex);
    file_digest(file, file_hex);
    if (strcmp(env_hex, last_env) != 0 || strcmp(file_hex, last_file) != 0) {
      printf("probe: env=%s file=%s\n", env_hex, file_hex);
      fflush(stdout);
      memcpy(last_env, env_hex, sizeof env_hex);
      memcpy(last_file, file_hex, sizeof file_hex);
    }
    FILE *out = fopen(tmp, "w");
    if (out) {
      fprintf(out, "pod=%s\nuid=%s\nstarted=%ld\nnow=%ld\nenv=%s\nfile=%s\n",
              pod, uid, started, (long)time(NULL), env_hex, file_hex);
      if (fclose(out) == 0) rename(tmp, path);
    } else {
      fprintf(stderr, "probe: cannot write %s: %s\n", tmp, strerror(errno));
    }
    sleep(1);
  }
  return 0;
}

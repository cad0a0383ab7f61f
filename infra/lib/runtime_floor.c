/* The smallest possible Lambda runtime client, for infra/bench's "harness floor".
 *
 * Init floor (no FLOOR_SERVE): connects to AWS_LAMBDA_RUNTIME_API (loopback only),
 * sends the first `GET .../invocation/next`, then waits (at most 10 s) to be
 * killed. The time from spawn to that poll is what the harness itself adds to every
 * init figure.
 *
 * Invocation floor (FLOOR_SERVE=1): serves invocations the way a function does,
 * with none of a function's own work: for each event it replays, one after the
 * other on kept-alive connections, the exact HTTP requests a function made for one
 * invocation (FLOOR_CALLS="PORT=FILE,PORT=FILE,...", each FILE one raw request to
 * 127.0.0.1:PORT), reads each answer, and posts the canned answer in
 * FLOOR_RESPONSE. Its CPU per invocation is what the same exchanges cost with no
 * HTTP library, no JSON, no signing, no allocation: the floor under a function's
 * own CPU figure on this machine. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CALLS 8
#define BUF_SIZE (1 << 20)

static char buf[BUF_SIZE];

static int connect_loopback(int port) {
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) return -1;
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

static int write_all(int s, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(s, data, len);
    if (n <= 0) return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads one HTTP/1.1 answer with a Content-Length into buf; returns the header
 * length (the body follows it in buf) or -1. */
static long read_answer(int s, size_t *total) {
  size_t have = 0;
  char *end = NULL;
  while (end == NULL) {
    if (have >= BUF_SIZE - 1) return -1;
    ssize_t n = read(s, buf + have, BUF_SIZE - 1 - have);
    if (n <= 0) return -1;
    have += (size_t)n;
    buf[have] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  size_t head = (size_t)(end - buf) + 4;
  size_t body = 0;
  for (char *line = buf; line < end; line = strstr(line, "\r\n") + 2) {
    if (strncasecmp(line, "Content-Length:", 15) == 0) body = (size_t)strtoul(line + 15, NULL, 10);
  }
  if (head + body >= BUF_SIZE) return -1;
  while (have < head + body) {
    ssize_t n = read(s, buf + have, head + body - have);
    if (n <= 0) return -1;
    have += (size_t)n;
  }
  *total = have;
  return (long)head;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc((size_t)size + 1);
  if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) return NULL;
  fclose(f);
  *len = (size_t)size;
  return data;
}

static int serve(int runtime) {
  int call_socket[MAX_CALLS];
  char *call_data[MAX_CALLS];
  size_t call_len[MAX_CALLS];
  int calls = 0;
  char *spec = getenv("FLOOR_CALLS");
  if (spec != NULL && *spec != '\0') {
    spec = strdup(spec);
    for (char *item = strtok(spec, ","); item != NULL && calls < MAX_CALLS; item = strtok(NULL, ",")) {
      char *eq = strchr(item, '=');
      if (eq == NULL) return 2;
      *eq = '\0';
      call_data[calls] = read_file(eq + 1, &call_len[calls]);
      call_socket[calls] = connect_loopback(atoi(item));
      if (call_data[calls] == NULL || call_socket[calls] < 0) return 2;
      calls++;
    }
  }
  size_t answer_len = 0;
  char *answer = read_file(getenv("FLOOR_RESPONSE") ? getenv("FLOOR_RESPONSE") : "/dev/null", &answer_len);
  if (answer == NULL) return 2;
  const char *next = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n";
  char request_id[128];
  char post[512];
  for (;;) {
    size_t total;
    if (write_all(runtime, next, strlen(next)) != 0) return 1;
    long head = read_answer(runtime, &total);
    if (head < 0) return 1;
    request_id[0] = '\0';
    for (char *line = buf; line < buf + head; line = strstr(line, "\r\n") + 2) {
      if (strncasecmp(line, "Lambda-Runtime-Aws-Request-Id:", 30) == 0) {
        sscanf(line + 30, " %127[^\r\n]", request_id);
      }
    }
    if (request_id[0] == '\0') return 1;
    for (int i = 0; i < calls; i++) {
      if (write_all(call_socket[i], call_data[i], call_len[i]) != 0) return 1;
      if (read_answer(call_socket[i], &total) < 0) return 1;
    }
    int n = snprintf(post, sizeof post,
                     "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: runtime\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     request_id, answer_len);
    if (write_all(runtime, post, (size_t)n) != 0 || write_all(runtime, answer, answer_len) != 0) return 1;
    if (read_answer(runtime, &total) < 0) return 1;
  }
}

int main(void) {
  const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
  char host[64];
  if (api == NULL || strlen(api) >= sizeof host) return 2;
  strcpy(host, api);
  char *colon = strchr(host, ':');
  if (colon == NULL) return 2;
  *colon = '\0';
  if (strcmp(host, "127.0.0.1") != 0) return 2;
  int s = connect_loopback(atoi(colon + 1));
  if (s < 0) return 1;
  if (getenv("FLOOR_SERVE") != NULL) return serve(s);
  const char *request = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n";
  if (write(s, request, strlen(request)) < 0) return 1;
  sleep(10);
  return 0;
}

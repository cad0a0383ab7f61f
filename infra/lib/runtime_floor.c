/* The smallest possible Lambda runtime client, for infra/bench's "harness floor":
 * connects to AWS_LAMBDA_RUNTIME_API (loopback only), sends the first
 * `GET .../invocation/next`, then waits (at most 10 s) to be killed. The time from
 * spawn to that poll is what the harness itself adds to every init figure. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
  char host[64];
  if (api == NULL || strlen(api) >= sizeof host) return 2;
  strcpy(host, api);
  char *colon = strchr(host, ':');
  if (colon == NULL) return 2;
  *colon = '\0';
  if (strcmp(host, "127.0.0.1") != 0) return 2;
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(colon + 1));
  inet_pton(AF_INET, host, &addr.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) return 1;
  const char *request = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n";
  if (write(s, request, strlen(request)) < 0) return 1;
  sleep(10);
  return 0;
}

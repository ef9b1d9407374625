// The profile endpoint's pure parsers (profiler/http_request.h): request
// heads (whole, cut short at every byte, malformed, oversized, other
// versions), query parameters, and listen addresses (forms, ports, loopback).
#include "profiler/http_request.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <string>

namespace assay::profiler::http {
namespace {

// The views of *r point into s: s must outlive their use (no temporaries
// where the views are read).
ParseStatus Parse(const std::string& s, Request* r) { return ParseRequest(s.data(), s.size(), r); }

TEST(HttpRequest, WholeGetSplitsPathAndQuery) {
  const std::string s =
      "GET /debug/pprof/allocs?seconds=2&gc=1 HTTP/1.1\r\nHost: 127.0.0.1:6060\r\n"
      "User-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n";
  Request r;
  ASSERT_EQ(Parse(s, &r), ParseStatus::kOk);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/debug/pprof/allocs");
  EXPECT_EQ(r.query, "seconds=2&gc=1");
  EXPECT_EQ(r.minor_version, 1);
  EXPECT_EQ(r.head_length, s.size());
}

TEST(HttpRequest, BareLineFeedsAndBytesAfterTheHead) {
  const std::string head = "HEAD /debug/pprof/heap HTTP/1.0\nAccept: */*\n\n";
  const std::string whole = head + "body bytes";
  Request r;
  ASSERT_EQ(Parse(whole, &r), ParseStatus::kOk);
  EXPECT_EQ(r.method, "HEAD");
  EXPECT_EQ(r.path, "/debug/pprof/heap");
  EXPECT_EQ(r.query, "");
  EXPECT_EQ(r.minor_version, 0);
  EXPECT_EQ(r.head_length, head.size());
}

TEST(HttpRequest, EveryProperPrefixOfAValidHeadIsIncomplete) {
  const std::string s = "GET /debug/pprof/ HTTP/1.1\r\nHost: x\r\nX-A: b\tc\r\n\r\n";
  Request r;
  for (size_t n = 0; n < s.size(); ++n) {
    EXPECT_EQ(ParseRequest(s.data(), n, &r), ParseStatus::kIncomplete) << "prefix of " << n;
  }
  EXPECT_EQ(Parse(s, &r), ParseStatus::kOk);
}

TEST(HttpRequest, MethodsOtherThanGetAreParsedForTheCallerToRefuse) {
  Request r;
  const std::string del = "DELETE /debug/pprof/heap HTTP/1.1\r\n\r\n";
  ASSERT_EQ(Parse(del, &r), ParseStatus::kOk);
  EXPECT_EQ(r.method, "DELETE");
  const std::string lower = "get /x HTTP/1.1\r\n\r\n";
  ASSERT_EQ(Parse(lower, &r), ParseStatus::kOk);
  EXPECT_EQ(r.method, "get");  // methods are case-sensitive: the server refuses it
}

TEST(HttpRequest, MalformedHeadsAreBadRequests) {
  const char* const bad[] = {
      " GET / HTTP/1.1\r\n\r\n",                    // no method
      "GET  / HTTP/1.1\r\n\r\n",                    // two spaces
      "GET http://h/ HTTP/1.1\r\n\r\n",             // absolute form
      "GET / HTTP/1.1 \r\n\r\n",                    // trailing space
      "GET /a b HTTP/1.1\r\n\r\n",                  // space in target
      "GET /a#frag HTTP/1.1\r\n\r\n",               // fragment
      "GET /\x01 HTTP/1.1\r\n\r\n",                 // control character
      "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",             // raw non-ASCII
      "GET /\r\n\r\n",                              // HTTP/0.9
      "GET / HTTP/1.1x\r\n\r\n",                    // bad version
      "GET / http/1.1\r\n\r\n",                     // lower-case version
      "G(T / HTTP/1.1\r\n\r\n",                     // not a token
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",          // header without ':'
      "GET / HTTP/1.1\r\n: empty\r\n\r\n",          // empty header name
      "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",      // space in name
      "GET / HTTP/1.1\r\nName : v\r\n\r\n",         // space before ':'
      "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",  // obsolete folding
      "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",         // DEL in value
  };
  for (const char* s : bad) {
    Request r;
    EXPECT_EQ(Parse(s, &r), ParseStatus::kBadRequest) << s;
  }
  // Garbage is refused as soon as its first line ends.
  Request r;
  EXPECT_EQ(Parse(std::string("\x16\x03\x01\x02\x00\x01\n", 7), &r), ParseStatus::kBadRequest);
  EXPECT_EQ(Parse(std::string("GET /\0 HTTP/1.1\r\n\r\n", 20), &r), ParseStatus::kBadRequest);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nBad Name: v\r\n", &r), ParseStatus::kBadRequest);
}

TEST(HttpRequest, OtherVersionsAreRefusedAsSuch) {
  Request r;
  EXPECT_EQ(Parse("GET / HTTP/2.0\r\n\r\n", &r), ParseStatus::kBadVersion);
  EXPECT_EQ(Parse("GET / HTTP/1.2\r\n\r\n", &r), ParseStatus::kBadVersion);
  EXPECT_EQ(Parse("GET / HTTP/0.9\r\n\r\n", &r), ParseStatus::kBadVersion);
}

TEST(HttpRequest, HeadsOverTheLimitAreTooLarge) {
  const std::string line = "GET /debug/pprof/heap HTTP/1.1\r\n";
  const std::string end = "\r\n";
  // A head of exactly kMaxRequestHead bytes is accepted...
  std::string filler = "X: ";
  filler += std::string(kMaxRequestHead - line.size() - end.size() - filler.size() - 2, 'a');
  filler += "\r\n";
  std::string exact = line + filler + end;
  ASSERT_EQ(exact.size(), kMaxRequestHead);
  Request r;
  EXPECT_EQ(Parse(exact, &r), ParseStatus::kOk);
  // ... one more byte is not, whatever arrives after it.
  std::string over = line + "X: a" + filler.substr(3) + end;
  ASSERT_EQ(over.size(), kMaxRequestHead + 1);
  EXPECT_EQ(Parse(over, &r), ParseStatus::kTooLarge);
  EXPECT_EQ(Parse(over + std::string(10000, 'b'), &r), ParseStatus::kTooLarge);
  // A request line that never ends.
  const std::string long_line = "GET /" + std::string(kMaxRequestHead, 'a');
  EXPECT_EQ(Parse(long_line, &r), ParseStatus::kTooLarge);
  EXPECT_EQ(ParseRequest(long_line.data(), kMaxRequestHead - 1, &r), ParseStatus::kIncomplete);
}

TEST(HttpRequest, QueryParameters) {
  std::string_view v;
  ASSERT_TRUE(QueryParam("gc=1&seconds=30", "seconds", &v));
  EXPECT_EQ(v, "30");
  ASSERT_TRUE(QueryParam("seconds=5&seconds=6", "seconds", &v));
  EXPECT_EQ(v, "5");
  ASSERT_TRUE(QueryParam("debug", "debug", &v));
  EXPECT_EQ(v, "");
  EXPECT_FALSE(QueryParam("xseconds=3&secondsx=4", "seconds", &v));
  EXPECT_FALSE(QueryParam("", "seconds", &v));
  EXPECT_FALSE(QueryParam("&&", "seconds", &v));
}

TEST(ListenAddress, FormsAndLoopback) {
  ListenAddress a;
  ASSERT_TRUE(ParseListenAddress("127.0.0.1:6060", &a));
  EXPECT_EQ(a.family, AF_INET);
  EXPECT_EQ(ntohs(a.in4.sin_port), 6060);
  EXPECT_EQ(ntohl(a.in4.sin_addr.s_addr), 0x7f000001u);
  EXPECT_TRUE(a.loopback);
  ASSERT_TRUE(ParseListenAddress("127.1.2.3:1", &a));
  EXPECT_TRUE(a.loopback);
  ASSERT_TRUE(ParseListenAddress("localhost:65535", &a));
  EXPECT_EQ(ntohl(a.in4.sin_addr.s_addr), 0x7f000001u);
  EXPECT_EQ(ntohs(a.in4.sin_port), 65535);
  ASSERT_TRUE(ParseListenAddress("0.0.0.0:6060", &a));
  EXPECT_FALSE(a.loopback);
  ASSERT_TRUE(ParseListenAddress("10.1.2.3:80", &a));
  EXPECT_FALSE(a.loopback);
  ASSERT_TRUE(ParseListenAddress("[::1]:6060", &a));
  EXPECT_EQ(a.family, AF_INET6);
  EXPECT_EQ(ntohs(a.in6.sin6_port), 6060);
  EXPECT_TRUE(a.loopback);
  ASSERT_TRUE(ParseListenAddress("[::ffff:127.0.0.1]:6060", &a));
  EXPECT_TRUE(a.loopback);
  ASSERT_TRUE(ParseListenAddress("[::]:6060", &a));
  EXPECT_FALSE(a.loopback);
  ASSERT_TRUE(ParseListenAddress("unix:/tmp/x.sock", &a));
  EXPECT_EQ(a.family, AF_UNIX);
  EXPECT_STREQ(a.un.sun_path, "/tmp/x.sock");
  EXPECT_TRUE(a.loopback);
}

TEST(ListenAddress, RefusedForms) {
  const std::string too_long = "unix:/" + std::string(sizeof(sockaddr_un::sun_path), 'a');
  const char* const bad[] = {
      "",
      "6060",
      ":6060",
      "127.0.0.1",
      "127.0.0.1:",
      "127.0.0.1:0",
      "127.0.0.1:65536",
      "127.0.0.1:60x",
      "127.0.0.1:-1",
      "example.com:80",
      "::1:6060",
      "[::1]6060",
      "[::1]:",
      "[nonsense]:80",
      "unix:",
      "unix:relative.sock",
      too_long.c_str(),
      "1.2.3.4.5:80",
      "256.0.0.1:80",
  };
  for (const char* s : bad) {
    ListenAddress a;
    EXPECT_FALSE(ParseListenAddress(s, &a)) << s;
  }
  ListenAddress a;
  EXPECT_FALSE(ParseListenAddress(nullptr, &a));
}

}  // namespace
}  // namespace assay::profiler::http

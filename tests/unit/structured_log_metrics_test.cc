// Structured (JSON) log lines: escaping, fields from LogFields scopes, and
// ids of the job and delivery a line concerns.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/daemon_util.h"

namespace reelfarm {
namespace {

TEST(FormatJsonLogLine, EscapesAndKeepsFields) {
  std::string line = FormatJsonLogLine("2024-01-02T03:04:05.678Z", "warn", "worker",
                                       "cannot open \"a\\b.mov\"\nsecond line\t\x01",
                                       {{"delivery", "film-3"}, {"job", "film-3.j1"}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["component"], "worker");
  EXPECT_EQ(j["msg"], "cannot open \"a\\b.mov\"\nsecond line\t\x01");
  EXPECT_EQ(j["delivery"], "film-3");
  EXPECT_EQ(j["job"], "film-3.j1");
}

TEST(FormatJsonLogLine, InvalidUtf8StillGivesValidJsonAndReservedKeysStay) {
  std::string line = FormatJsonLogLine("t", "info", "c", "bad \xff\xfe bytes",
                                       {{"msg", "spoof"}, {"level", "x"}, {"job", "a"}});
  auto j = nlohmann::json::parse(line);  // throws on invalid JSON
  EXPECT_NE(j["msg"].get<std::string>().find("bad"), std::string::npos);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["job"], "a");
}

TEST(LogFields, ScopesNestUnwindAndStayOnTheirThread) {
  EXPECT_TRUE(LogFields::Current().empty());
  {
    LogFields outer({{"delivery", "d-1"}, {"job", ""}});  // empty values are left out
    ASSERT_EQ(LogFields::Current().size(), 1u);
    {
      LogFields inner({{"job", "d-1.j0"}});
      EXPECT_EQ(LogFields::Current().size(), 2u);
      std::thread([] { EXPECT_TRUE(LogFields::Current().empty()); }).join();
    }
    EXPECT_EQ(LogFields::Current().size(), 1u);
  }
  EXPECT_TRUE(LogFields::Current().empty());
}

TEST(DeliveryOfJob, IsEverythingBeforeTheLastDot) {
  EXPECT_EQ(DeliveryOfJob("launch.film-12.j3"), "launch.film-12");
  EXPECT_EQ(DeliveryOfJob("nodot"), "");
}

TEST(MakeLogFormatter, EveryJsonLineIsValidAndCarriesTheScopeFields) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  auto logger = std::make_shared<spdlog::logger>("logtest", sink);
  logger->set_formatter(MakeLogFormatter("json", "coordinator"));
  logger->info("plain {}", 1);
  {
    LogFields f({{"delivery", "film-9"}, {"job", "film-9.j2"}});
    logger->warn("job {} failed: \"quoted\"", "film-9.j2");
  }
  std::istringstream lines(out.str());
  std::vector<nlohmann::json> parsed;
  for (std::string line; std::getline(lines, line);) parsed.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(parsed.size(), 2u);
  for (const auto& j : parsed) {
    EXPECT_TRUE(j.contains("ts"));
    EXPECT_EQ(j["component"], "coordinator");
  }
  EXPECT_EQ(parsed[0]["msg"], "plain 1");
  EXPECT_FALSE(parsed[0].contains("job"));
  EXPECT_EQ(parsed[1]["level"], "warning");
  EXPECT_EQ(parsed[1]["msg"], "job film-9.j2 failed: \"quoted\"");
  EXPECT_EQ(parsed[1]["delivery"], "film-9");
  EXPECT_EQ(parsed[1]["job"], "film-9.j2");
  EXPECT_EQ(MakeLogFormatter("xml", "c"), nullptr);
}

TEST(MakeLogFormatter, TextLinesAppendTheFields) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  auto logger = std::make_shared<spdlog::logger>("logtest-text", sink);
  logger->set_formatter(MakeLogFormatter("text", "worker"));
  LogFields f({{"job", "film-9.j2"}});
  logger->info("hello");
  EXPECT_NE(out.str().find("[worker] hello job=film-9.j2\n"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace reelfarm

// nats::destroy_on_this_thread relies on natsMsg starting with nats.c's natsGCItem
// {next, freeCb}. If a nats.c release moves it, the pointer read here is not the library's free
// function and this fails, before a loop frees a message through the wrong field.
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <string>

#include "gateway/nats/nats_handles.hpp"

TEST_CASE("a natsMsg starts with the collector item destroy_on_this_thread clears",
          "[unit][nats]") {
  natsMsg* msg = nullptr;
  REQUIRE(natsMsg_Create(&msg, "a.subject", nullptr, "data", 4) == NATS_OK);
  auto* item = reinterpret_cast<omnigate::nats::MsgCollectorItem*>(msg);
  CHECK(item->next == nullptr);  // not in the collector's list
  REQUIRE(item->free_cb != nullptr);
  Dl_info info{};
  REQUIRE(dladdr(reinterpret_cast<void*>(item->free_cb), &info) != 0);
  REQUIRE(info.dli_fname != nullptr);
  // The collector's callback is code of libnats, not data of the message.
  CHECK(std::string(info.dli_fname).find("libnats") != std::string::npos);
  CHECK(std::string(natsMsg_GetSubject(msg)) == "a.subject");
  omnigate::nats::destroy_on_this_thread(msg);
}

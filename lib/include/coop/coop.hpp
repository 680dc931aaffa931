// coop/coop.hpp — everything in one include.
#pragma once

#include <coop/blocking_scope.hpp>
#include <coop/channel.hpp>
#include <coop/error.hpp>
#include <coop/io.hpp>
#include <coop/net/basic_listener.hpp>
#include <coop/net/basic_stream.hpp>
#include <coop/net/connect.hpp>
#include <coop/net/resolve.hpp>
#include <coop/net/serve.hpp>
#include <coop/net/tcp_listener.hpp>
#include <coop/net/tcp_stream.hpp>
#include <coop/net/udp.hpp>
#include <coop/net/unix.hpp>
#include <coop/run.hpp>
#include <coop/runtime.hpp>
#include <coop/select.hpp>
#include <coop/task.hpp>
#include <coop/task_group.hpp>
#include <coop/this_fiber.hpp>
#include <coop/timeout.hpp>
#include <coop/yield.hpp>

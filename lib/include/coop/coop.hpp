// coop/coop.hpp — everything in one include.
#pragma once

#include <coop/async_result.hpp>
#include <coop/blocking_scope.hpp>
#include <coop/channel.hpp>
#include <coop/error.hpp>
#include <coop/event.hpp>
#include <coop/fiber_local.hpp>
#include <coop/io.hpp>
#include <coop/mutex.hpp>
#include <coop/net/connect.hpp>
#include <coop/net/serve.hpp>
#include <coop/net/tcp_listener.hpp>
#include <coop/net/tcp_stream.hpp>
#include <coop/offload.hpp>
#include <coop/pool.hpp>
#include <coop/run.hpp>
#include <coop/runtime.hpp>
#include <coop/select.hpp>
#include <coop/semaphore.hpp>
#include <coop/task.hpp>
#include <coop/task_group.hpp>
#include <coop/this_fiber.hpp>
#include <coop/timeout.hpp>
#include <coop/wait_group.hpp>
#include <coop/yield.hpp>

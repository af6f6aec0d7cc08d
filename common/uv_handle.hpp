// Move-only owner of one libuv handle. The handle's memory lives on the heap and is freed only in
// its uv_close callback (libuv may still touch it until then), so the owner can go away at any time.
#pragma once

#include <uv.h>

#include <utility>

namespace tunnel {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  ~UvHandle() { close(); }
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      close();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }

  // Allocates the handle and runs `init(loop, handle, args...)` (uv_tcp_init, uv_timer_init, ...).
  // Returns the libuv status; on failure nothing is owned.
  template <typename Init, typename... Args>
  int init(uv_loop_t* loop, Init init_fn, Args&&... args) {
    close();
    Box* box = new Box{};
    int rc = init_fn(loop, &box->handle, std::forward<Args>(args)...);
    if (rc != 0) {
      delete box;  // never initialised, so libuv holds no reference to it
      return rc;
    }
    handle_ = &box->handle;
    return 0;
  }

  T* get() const { return handle_; }
  uv_handle_t* as_handle() const { return reinterpret_cast<uv_handle_t*>(handle_); }
  uv_stream_t* as_stream() const { return reinterpret_cast<uv_stream_t*>(handle_); }
  explicit operator bool() const { return handle_ != nullptr; }

  // Closes the handle (once) and lets go of it; `on_closed`, if given, runs from the close callback
  // with the handle's `data` pointer, before the memory is freed.
  void close(void (*on_closed)(void* data) = nullptr) {
    if (handle_ == nullptr) return;
    uv_handle_t* h = as_handle();
    if (!uv_is_closing(h)) {
      closers_for(h) = on_closed;
      uv_close(h, &on_uv_close);
    }
    handle_ = nullptr;
  }

 private:
  // The close hook is stored beside the handle so the owner need not outlive it.
  struct Box {
    T handle;  // first member: a T* from libuv converts back to its Box*
    void (*on_closed)(void*) = nullptr;
  };
  static void (*&closers_for(uv_handle_t* h))(void*) { return reinterpret_cast<Box*>(h)->on_closed; }

  // Called by libuv when the handle is fully closed: the only place its memory is freed.
  static void on_uv_close(uv_handle_t* h) noexcept {
    Box* box = reinterpret_cast<Box*>(h);
    if (box->on_closed != nullptr) box->on_closed(h->data);
    delete box;
  }

  T* handle_ = nullptr;
};

}  // namespace tunnel

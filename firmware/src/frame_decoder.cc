#include "frame_decoder.h"

#include <string.h>

namespace {

uint16_t Le16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }

uint32_t Le32(const uint8_t* p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

}  // namespace

void FrameDecoder::Feed(const uint8_t* data, size_t n) {
  while (n > 0) {
    if (end_ == sizeof(buf_) && start_ > 0) {  // compact only when the tail is full
      memmove(buf_, buf_ + start_, end_ - start_);
      end_ -= start_;
      start_ = 0;
    }
    size_t room = sizeof(buf_) - end_;
    size_t take = n < room ? n : room;
    memcpy(buf_ + end_, data, take);
    end_ += take;
    data += take;
    n -= take;
    // A full buffer always decides something: any frame it could hold is <= TF_MAX_FRAME.
    Drain();
  }
}

void FrameDecoder::Flush() {
  while (end_ - start_ >= 2 && buf_[start_] == TF_PROTO_SYNC0 && buf_[start_ + 1] == TF_PROTO_SYNC1) {
    garbage_bytes_ += 1;
    Drop(1);
    Drain();
  }
}

void FrameDecoder::Drop(size_t n) {
  start_ += n;
  if (start_ == end_) start_ = end_ = 0;
}

void FrameDecoder::Drain() {
  while (end_ > start_) {
    // Hunt for the sync pair.
    size_t i = start_;
    while (i + 1 < end_ && !(buf_[i] == TF_PROTO_SYNC0 && buf_[i + 1] == TF_PROTO_SYNC1)) i++;
    if (i + 1 >= end_) {
      // No sync pair; keep a trailing SYNC0, it may be the first half of one.
      size_t keep = buf_[end_ - 1] == TF_PROTO_SYNC0 ? 1 : 0;
      garbage_bytes_ += (uint32_t)(end_ - start_ - keep);
      Drop(end_ - start_ - keep);
      return;
    }
    if (i > start_) {
      garbage_bytes_ += (uint32_t)(i - start_);
      Drop(i - start_);
    }
    const size_t avail = end_ - start_;
    if (avail < TF_HEADER_SIZE) return;
    const uint8_t* h = buf_ + start_;
    TfFrame frame;
    frame.version = h[2];
    frame.type = h[3];
    frame.seq = Le16(h + 4);
    frame.length = Le16(h + 6);
    frame.payload = h + TF_HEADER_SIZE;
    if (tf_header_crc(h) != Le16(h + 8)) {  // noise that looked like a sync, or a hit header
      garbage_bytes_ += 1;
      Drop(1);
      continue;
    }
    if (frame.length > TF_MAX_PAYLOAD) {
      handler_(TF_EVENT_TOO_LARGE, frame, context_);
      Drop(TF_HEADER_SIZE);  // its payload, if any comes, is skipped as garbage
      continue;
    }
    const size_t total = (size_t)TF_FRAME_OVERHEAD + frame.length;
    if (avail < total) return;
    const size_t body = total - TF_CRC_SIZE;
    if (tf_crc32_update(0, h, body) != Le32(h + body)) {
      handler_(TF_EVENT_BAD_CRC, frame, context_);
      Drop(1);
      continue;
    }
    frames_ += 1;
    handler_(TF_EVENT_FRAME, frame, context_);
    Drop(total);
  }
}

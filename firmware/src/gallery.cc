#include "gallery.h"

#include <math.h>
#include <string.h>

#include "gallery_data.h"
#include "platform.h"

namespace {

constexpr uint32_t kMagic = 0x31474654u;  // "TFG1"
constexpr uint16_t kFormat = 2;  // 2: builtin_hash after the people
constexpr const char* kStorageKey = "gallery";

float Dot(const float* a, const float* b) {
  float s = 0.0f;
  for (int i = 0; i < TF_MODEL_OUTPUT_SIZE; i++) s += a[i] * b[i];
  return s;
}

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
bool ValidUtf8(const unsigned char* s, int n) {
  int i = 0;
  while (i < n) {
    unsigned char c = s[i];
    int len;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;       // overlong
      else if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;       // overlong
      else if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; k++) {
      unsigned char b = s[i + k];
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return false;
    }
    i += len;
  }
  return true;
}

}  // namespace

bool tf_valid_name_field(const char* field) {
  if (field[0] == 0 || field[TF_MAX_NAME_BYTES - 1] != 0) return false;
  bool ended = false;
  int length = 0;
  for (int i = 0; i < TF_MAX_NAME_BYTES; i++) {
    if (field[i] == 0) ended = true;
    else if (ended) return false;
    else length = i + 1;
  }
  return ValidUtf8(reinterpret_cast<const unsigned char*>(field), length);
}

void Gallery::Load() {
  int got = tf_storage_load(kStorageKey, &blob_, sizeof(blob_));
  const bool this_model = got == (int)sizeof(blob_) && blob_.magic == kMagic && blob_.format == kFormat &&
                          blob_.embedding_dim == TF_MODEL_OUTPUT_SIZE &&
                          memcmp(blob_.model_sha256, kTfModelSha256, TF_MODEL_HASH_BYTES) == 0;
  // No people compiled in (a plain update): keep what was enrolled, and the hash it records.
  // The same compiled-in gallery again: keep the enrollments made on top of it. Another one
  // (`--enroll` with another folder; uploading leaves NVS as it was): its people, not the old.
  if (this_model && (TF_GALLERY_BUILTIN_COUNT == 0 || blob_.builtin_hash == TF_GALLERY_BUILTIN_HASH)) {
    // Trust the layout, not the contents: free any slot ENROLL could not have written
    // (a bad name field, a name already held by a lower slot, a non-finite sum).
    for (int i = 0; i < TF_GALLERY_CAPACITY; i++) {
      TfPerson& p = blob_.people[i];
      if (p.name[0] == 0) continue;
      bool ok = tf_valid_name_field(p.name) && Find(p.name) == i;
      for (int k = 0; ok && k < TF_MODEL_OUTPUT_SIZE; k++) ok = isfinite(p.sum[k]);
      if (!ok) memset(&p, 0, sizeof(p));
    }
    return;
  }
  memset(&blob_, 0, sizeof(blob_));
  blob_.magic = kMagic;
  blob_.format = kFormat;
  blob_.embedding_dim = TF_MODEL_OUTPUT_SIZE;
  memcpy(blob_.model_sha256, kTfModelSha256, TF_MODEL_HASH_BYTES);
  blob_.builtin_hash = TF_GALLERY_BUILTIN_HASH;
#if TF_GALLERY_BUILTIN_COUNT > 0
  for (int p = 0; p < TF_GALLERY_BUILTIN_COUNT && p < TF_GALLERY_CAPACITY; p++) {
    TfPerson& person = blob_.people[p];
    strncpy(person.name, kTfBuiltinGallery[p].name, TF_MAX_NAME_BYTES - 1);
    person.samples = kTfBuiltinGallery[p].samples;
    memcpy(person.sum, kTfBuiltinGallery[p].sum, sizeof(person.sum));
  }
  // Saved now, not at the first ENROLL or DELETE: a firmware with none compiled in flashed
  // next keeps whatever storage holds, which would otherwise still be the replaced gallery.
  // Once saved, this firmware keeps it at the next boot (one write per flash). A failed save
  // changes nothing here: the next ENROLL or DELETE saves again, and reports a failure.
  Save();
#endif
}

bool Gallery::Save() { return tf_storage_save(kStorageKey, &blob_, sizeof(blob_)) == 0; }

uint16_t Gallery::count() const {
  uint16_t n = 0;
  for (const TfPerson& p : blob_.people) n += p.name[0] != 0;
  return n;
}

int Gallery::Find(const char* name_field) const {
  for (int i = 0; i < TF_GALLERY_CAPACITY; i++) {
    if (blob_.people[i].name[0] != 0 && memcmp(blob_.people[i].name, name_field, TF_MAX_NAME_BYTES) == 0) return i;
  }
  return -1;
}

bool Gallery::CanEnroll(const char* name_field) const {
  return Find(name_field) >= 0 || count() < TF_GALLERY_CAPACITY;
}

int Gallery::Enroll(const char* name_field, const float* unit_embedding) {
  int slot = Find(name_field);
  if (slot < 0) {
    for (int i = 0; i < TF_GALLERY_CAPACITY && slot < 0; i++) {
      if (blob_.people[i].name[0] == 0) slot = i;
    }
    if (slot < 0) return -1;
    TfPerson& fresh = blob_.people[slot];
    memset(&fresh, 0, sizeof(fresh));
    memcpy(fresh.name, name_field, TF_MAX_NAME_BYTES);
  }
  TfPerson& person = blob_.people[slot];
  for (int i = 0; i < TF_MODEL_OUTPUT_SIZE; i++) person.sum[i] += unit_embedding[i];
  if (person.samples < UINT16_MAX) person.samples += 1;  // saturate: never wraps to 0
  return slot;
}

uint16_t Gallery::Delete(const char* name_field) {
  bool everyone = true;
  for (int i = 0; i < TF_MAX_NAME_BYTES; i++) everyone = everyone && name_field[i] == 0;
  if (everyone) {
    uint16_t removed = count();
    memset(blob_.people, 0, sizeof(blob_.people));
    return removed;
  }
  int slot = Find(name_field);
  if (slot < 0) return 0;
  memset(&blob_.people[slot], 0, sizeof(TfPerson));
  return 1;
}

int Gallery::Identify(const float* embedding, float* similarity) const {
  int best = -1;
  float best_sim = -1.0f;
  const float norm = sqrtf(Dot(embedding, embedding));
  for (int i = 0; i < TF_GALLERY_CAPACITY; i++) {
    const TfPerson& p = blob_.people[i];
    if (p.name[0] == 0) continue;
    const float denom = norm * sqrtf(Dot(p.sum, p.sum));
    const float sim = denom > 0.0f ? Dot(embedding, p.sum) / denom : 0.0f;
    if (best < 0 || sim > best_sim) {
      best = i;
      best_sim = sim;
    }
  }
  *similarity = best < 0 ? -1.0f : best_sim;
  return best;
}

#include "tokenizer/added_tokens.h"

#include <algorithm>

namespace dsv3 {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (const AddedToken& t : tokens_) {
    if (t.content.empty()) continue;
    Group& g = t.normalized ? normalized_ : raw_;
    g.by_first_byte[static_cast<unsigned char>(t.content[0])].push_back(&t);
    g.any = true;
  }
  for (Group* g : {&raw_, &normalized_})
    for (auto& list : g->by_first_byte)
      std::stable_sort(list.begin(), list.end(),
                       [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
}

bool AddedTokenMatcher::Group::find(std::string_view text, size_t from, size_t& begin,
                                    const AddedToken*& token) const {
  for (size_t i = from; i < text.size(); ++i) {
    for (const AddedToken* t : by_first_byte[static_cast<unsigned char>(text[i])]) {
      if (text.compare(i, t->content.size(), t->content) == 0) {
        begin = i;
        token = t;
        return true;
      }
    }
  }
  return false;
}

void AddedTokenMatcher::split_group(const Group& group, std::string_view text, std::vector<Segment>& out) const {
  size_t pos = 0, begin = 0;
  const AddedToken* token = nullptr;
  while (group.any && group.find(text, pos, begin, token)) {
    if (begin > pos) out.push_back({text.substr(pos, begin - pos), -1});
    out.push_back({text.substr(begin, token->content.size()), token->id});
    pos = begin + token->content.size();
  }
  if (pos < text.size()) out.push_back({text.substr(pos), -1});
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  std::vector<Segment> first;
  split_group(raw_, text, first);
  for (const Segment& s : first) {
    if (s.id >= 0) {
      out.push_back(s);
    } else {
      split_group(normalized_, s.text, out);
    }
  }
}

const AddedToken* AddedTokenMatcher::find_by_id(int32_t id) const {
  for (const AddedToken& t : tokens_)
    if (t.id == id) return &t;
  return nullptr;
}

const AddedToken* AddedTokenMatcher::find_by_content(std::string_view content) const {
  for (const AddedToken& t : tokens_)
    if (t.content == content) return &t;
  return nullptr;
}

}  // namespace dsv3

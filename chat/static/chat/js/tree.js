// A conversation's message tree on the page: the messages by id, their children in order, and
// which child of each message is shown. The branch shown runs from the root down the chosen
// children; a parent without a choice shows the child whose subtree holds the newest message.

export class Tree {
  constructor(messages) {
    this.byId = new Map();
    this.children = new Map(); // parent id ("" for roots) -> child ids, oldest first
    this.order = new Map(); // id -> position in the order messages were written
    this.chosen = new Map(); // parent id -> chosen child id
    this.latest = new Map(); // id -> the newest position in its subtree (cached)
    for (const message of messages) this.add(message);
    // The branch the server calls current: the path to the newest message.
    for (const message of messages) {
      if (message.current) this.chosen.set(message.parent_id || "", message.id);
    }
  }

  add(message) {
    if (this.byId.has(message.id)) return this.byId.get(message.id);
    const node = { ...message, content: message.content || [] };
    this.byId.set(node.id, node);
    this.order.set(node.id, this.order.size);
    const key = node.parent_id || "";
    if (!this.children.has(key)) this.children.set(key, []);
    this.children.get(key).push(node.id);
    this.latest.clear();
    return node;
  }

  get(id) {
    return this.byId.get(id);
  }

  get size() {
    return this.byId.size;
  }

  siblings(id) {
    const node = this.byId.get(id);
    return node ? this.children.get(node.parent_id || "") || [id] : [];
  }

  newestIn(id) {
    if (this.latest.has(id)) return this.latest.get(id);
    let newest = this.order.get(id);
    for (const child of this.children.get(id) || []) newest = Math.max(newest, this.newestIn(child));
    this.latest.set(id, newest);
    return newest;
  }

  pick(parentKey) {
    const kids = this.children.get(parentKey) || [];
    if (kids.length === 0) return null;
    const chosen = this.chosen.get(parentKey);
    if (chosen && kids.includes(chosen)) return chosen;
    return kids.reduce((best, id) => (this.newestIn(id) > this.newestIn(best) ? id : best));
  }

  // The ids of the branch shown, root first.
  branch() {
    const ids = [];
    let key = "";
    for (let id = this.pick(key); id; id = this.pick(key)) {
      ids.push(id);
      key = id;
    }
    return ids;
  }

  // Show `id` (its ancestors choose the way to it) and, below it, the newest leaf.
  show(id) {
    let node = this.byId.get(id);
    while (node) {
      this.chosen.set(node.parent_id || "", node.id);
      node = node.parent_id ? this.byId.get(node.parent_id) : null;
    }
    this.forgetBelow(id);
  }

  forgetBelow(id) {
    for (const child of this.children.get(id) || []) {
      this.chosen.delete(id);
      this.forgetBelow(child);
    }
  }

  // The newest message on the branch shown: what a new message answers.
  leaf() {
    const ids = this.branch();
    return ids.length ? ids[ids.length - 1] : null;
  }
}

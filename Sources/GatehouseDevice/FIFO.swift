/// A first-in first-out queue with O(1) amortised push and pop, without a collections dependency.
struct FIFO<Element> {
    private var storage: [Element] = []
    private var head = 0

    var isEmpty: Bool { self.head == self.storage.count }
    var count: Int { self.storage.count - self.head }

    mutating func append(_ element: Element) {
        self.storage.append(element)
    }

    mutating func popFirst() -> Element? {
        guard self.head < self.storage.count else { return nil }
        let element = self.storage[self.head]
        self.head += 1
        // Reclaim the consumed prefix once it dominates, keeping pops O(1) amortised.
        if self.head >= 32, self.head * 2 >= self.storage.count {
            self.storage.removeFirst(self.head)
            self.head = 0
        }
        return element
    }

    /// Removes the first element matching `predicate`, if any.
    mutating func remove(where predicate: (Element) -> Bool) -> Element? {
        guard let index = self.storage[self.head...].firstIndex(where: predicate) else { return nil }
        return self.storage.remove(at: index)
    }

    /// Removes and returns every element.
    mutating func removeAll() -> [Element] {
        let elements = Array(self.storage[self.head...])
        self.storage = []
        self.head = 0
        return elements
    }
}

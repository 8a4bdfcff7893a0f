package executor

import "testing"

// TestFlushAfterAFullBatchRestsTheGroup: when the batch a PubAck made ready
// was taken by a full send in the meantime, the group has nothing on its way
// and rests, so the next Submit of its kind goes at once instead of waiting
// for company that may never come.
func TestFlushAfterAFullBatchRestsTheGroup(t *testing.T) {
	c := newCoalescer(&NATS{}, 2)
	key := groupKey{kind: "square"}
	c.groups[key] = &group{sending: true} // its pending batch left full, on its own
	c.ready = []groupKey{key}
	if !c.flushOne() {
		t.Fatal("flushOne found nothing ready")
	}
	if g := c.groups[key]; g != nil {
		t.Fatalf("group left %+v: a lone Submit would wait in it", *g)
	}
	if c.flushOne() {
		t.Fatal("flushOne found a second ready group")
	}
}

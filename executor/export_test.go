package executor

// HoldNoRecords makes j read the records of each chunk of its job when it
// reaches it, rather than hold those it read as it attached: as a Job that
// raced another producer of the job does.
func HoldNoRecords(j *Job) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.holdNoRecords = true
	clear(j.held)
}

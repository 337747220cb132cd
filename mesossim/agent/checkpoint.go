package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// The agent's checkpoint under <work_dir>/meta, in the layout of Mesos' src/slave/paths.cpp:
//
//	meta/slaves/<agent>/slave.info
//	meta/slaves/<agent>/frameworks/<fw>/framework.info
//	  .../executors/<ex>/executor.info
//	  .../executors/<ex>/runs/latest -> <container>
//	  .../executors/<ex>/runs/<container>/pids/forked.pid   (the executor's pid, text)
//	  .../executors/<ex>/runs/<container>/http.marker       (the executor subscribed over HTTP)
//	  .../executors/<ex>/runs/<container>/executor.sentinel (the run is over)
//	  .../executors/<ex>/runs/<container>/tasks/<task>/task.info
//	  .../executors/<ex>/runs/<container>/tasks/<task>/task.updates
//
// Messages are written as stout's protobuf::write does: a 4-byte host-order (little-endian here)
// length, then the message; task.updates is a sequence of StatusUpdateRecords (messages.proto),
// encoded by hand since mesos-go does not carry Mesos' internal messages. Only frameworks with
// FrameworkInfo.checkpoint are checkpointed, as in Mesos.

func (a *Agent) metaAgentDir() string {
	return filepath.Join(a.cfg.WorkDir, "meta", "slaves", a.cfg.ID.Value)
}

func (a *Agent) metaFrameworkDir(fid string) string {
	return filepath.Join(a.metaAgentDir(), "frameworks", fid)
}

func (a *Agent) metaExecutorDir(fid, eid string) string {
	return filepath.Join(a.metaFrameworkDir(fid), "executors", eid)
}

func (a *Agent) metaRunDir(e *executorRun) string {
	return filepath.Join(a.metaExecutorDir(e.fw.info.GetID().GetValue(), e.info.ExecutorID.Value), "runs", e.containerID.Value)
}

func (a *Agent) metaTaskDir(e *executorRun, tid string) string {
	return filepath.Join(a.metaRunDir(e), "tasks", tid)
}

// checkpointMessage writes one size-prefixed message atomically (temp file, rename), as
// state::checkpoint does.
func checkpointMessage(path string, m proto.Marshaler) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return checkpointBytes(path, sizePrefixed(b))
}

func checkpointBytes(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func sizePrefixed(b []byte) []byte {
	out := make([]byte, 4, 4+len(b))
	binary.LittleEndian.PutUint32(out, uint32(len(b)))
	return append(out, b...)
}

// readMessages reads every size-prefixed message of a file. A truncated tail (the agent died in the
// middle of a write) is dropped, as state.cpp does for task.updates.
func readMessages(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(b) >= 4 {
		n := int(binary.LittleEndian.Uint32(b))
		if len(b)-4 < n {
			break
		}
		out = append(out, b[4:4+n])
		b = b[4+n:]
	}
	return out, nil
}

func readMessage(path string, m proto.Unmarshaler) error {
	msgs, err := readMessages(path)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return fmt.Errorf("'%s' is empty", path)
	}
	return m.Unmarshal(msgs[0])
}

// checkpointFrameworkLocked writes framework.info (and refreshes it when the framework changes).
func (a *Agent) checkpointFrameworkLocked(f *framework) {
	if !f.info.GetCheckpoint() {
		return
	}
	a.checkpointErr(checkpointMessage(filepath.Join(a.metaFrameworkDir(f.info.GetID().GetValue()), "framework.info"), &f.info))
}

// checkpointExecutorLocked writes executor.info and the run's directory with runs/latest.
func (a *Agent) checkpointExecutorLocked(e *executorRun) {
	if !e.fw.info.GetCheckpoint() {
		return
	}
	a.checkpointFrameworkLocked(e.fw)
	dir := a.metaExecutorDir(e.fw.info.GetID().GetValue(), e.info.ExecutorID.Value)
	a.checkpointErr(checkpointMessage(filepath.Join(dir, "executor.info"), &e.info))
	run := a.metaRunDir(e)
	if err := os.MkdirAll(filepath.Join(run, "pids"), 0o755); err != nil {
		a.checkpointErr(err)
		return
	}
	latest := filepath.Join(dir, "runs", "latest")
	_ = os.Remove(latest)
	a.checkpointErr(os.Symlink(run, latest))
}

// checkpointPidLocked writes the executor's forked.pid once its process runs.
func (a *Agent) checkpointPidLocked(e *executorRun) {
	if e.fw.info.GetCheckpoint() && e.pid > 0 {
		a.checkpointErr(checkpointBytes(filepath.Join(a.metaRunDir(e), "pids", "forked.pid"), []byte(strconv.Itoa(e.pid))))
	}
}

// checkpointMarkerLocked touches http.marker when an executor subscribes (Slave::subscribe).
func (a *Agent) checkpointMarkerLocked(e *executorRun) {
	if e.fw.info.GetCheckpoint() {
		a.checkpointErr(checkpointBytes(filepath.Join(a.metaRunDir(e), "http.marker"), nil))
	}
}

// checkpointSentinelLocked marks the run completed (Slave::executorTerminated).
func (a *Agent) checkpointSentinelLocked(e *executorRun) {
	if e.fw.info.GetCheckpoint() {
		if _, err := os.Stat(a.metaRunDir(e)); err == nil {
			a.checkpointErr(checkpointBytes(filepath.Join(a.metaRunDir(e), "executor.sentinel"), nil))
		}
	}
}

// checkpointTaskLocked writes task.info when the task is delivered to its executor.
func (a *Agent) checkpointTaskLocked(t *task) {
	if t.executor.fw.info.GetCheckpoint() {
		a.checkpointErr(checkpointMessage(filepath.Join(a.metaTaskDir(t.executor, t.info.TaskID.Value), "task.info"), &t.info))
	}
}

// Record types of StatusUpdateRecord.
const (
	recordUpdate = 0
	recordAck    = 1
)

// appendUpdateRecordLocked appends a StatusUpdateRecord to the task's task.updates, as the task
// status update manager does before it forwards an update or after it processes an acknowledgement.
func (a *Agent) appendUpdateRecordLocked(f *framework, taskID string, kind int, status *mesos.TaskStatus, uuid []byte) {
	if !f.info.GetCheckpoint() {
		return
	}
	t := f.tasks[taskID]
	if t == nil || t.executor == nil {
		return
	}
	dir := a.metaTaskDir(t.executor, taskID)
	if _, err := os.Stat(filepath.Join(dir, "task.info")); err != nil {
		return // not checkpointed (never delivered): nothing to recover it from
	}
	rec, err := encodeUpdateRecord(kind, f.info.GetID().GetValue(), a.cfg.ID.Value, status, uuid)
	if err != nil {
		a.checkpointErr(err)
		return
	}
	fh, err := os.OpenFile(filepath.Join(dir, "task.updates"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.checkpointErr(err)
		return
	}
	_, err = fh.Write(sizePrefixed(rec))
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	a.checkpointErr(err)
}

func (a *Agent) checkpointErr(err error) {
	if err != nil {
		a.log.WithError(err).Error("failed to checkpoint")
	}
}

// encodeUpdateRecord is StatusUpdateRecord{type, update: StatusUpdate{framework_id, executor_id,
// slave_id, status, timestamp, uuid}, uuid}.
func encodeUpdateRecord(kind int, fid, aid string, status *mesos.TaskStatus, uuid []byte) ([]byte, error) {
	rec := proto.NewBuffer(nil)
	_ = rec.EncodeVarint(1<<3 | proto.WireVarint)
	_ = rec.EncodeVarint(uint64(kind))
	if kind == recordUpdate {
		u := proto.NewBuffer(nil)
		fw := mesos.FrameworkID{Value: fid}
		if err := u.EncodeVarint(1<<3 | proto.WireBytes); err != nil {
			return nil, err
		}
		if err := u.EncodeMessage(&fw); err != nil {
			return nil, err
		}
		if status.ExecutorID != nil {
			_ = u.EncodeVarint(2<<3 | proto.WireBytes)
			if err := u.EncodeMessage(status.ExecutorID); err != nil {
				return nil, err
			}
		}
		ag := mesos.AgentID{Value: aid}
		_ = u.EncodeVarint(3<<3 | proto.WireBytes)
		if err := u.EncodeMessage(&ag); err != nil {
			return nil, err
		}
		_ = u.EncodeVarint(4<<3 | proto.WireBytes)
		if err := u.EncodeMessage(status); err != nil {
			return nil, err
		}
		_ = u.EncodeVarint(5<<3 | proto.WireFixed64)
		_ = u.EncodeFixed64(math.Float64bits(status.GetTimestamp()))
		_ = u.EncodeVarint(6<<3 | proto.WireBytes)
		_ = u.EncodeRawBytes(status.UUID)
		_ = rec.EncodeVarint(2<<3 | proto.WireBytes)
		_ = rec.EncodeRawBytes(u.Bytes())
		return rec.Bytes(), nil
	}
	_ = rec.EncodeVarint(3<<3 | proto.WireBytes)
	_ = rec.EncodeRawBytes(uuid)
	return rec.Bytes(), nil
}

// updateRecord is a decoded StatusUpdateRecord.
type updateRecord struct {
	kind   int
	status mesos.TaskStatus // kind == recordUpdate
	uuid   []byte           // kind == recordAck
}

func decodeUpdateRecord(b []byte) (updateRecord, error) {
	var r updateRecord
	err := walkFields(b, func(field, wire uint64, v uint64, raw []byte) error {
		switch {
		case field == 1 && wire == proto.WireVarint:
			r.kind = int(v)
		case field == 2 && wire == proto.WireBytes:
			st, err := decodeStatusUpdate(raw)
			if err != nil {
				return err
			}
			r.status = st
		case field == 3 && wire == proto.WireBytes:
			r.uuid = append([]byte(nil), raw...)
		}
		return nil
	})
	return r, err
}

// decodeStatusUpdate takes the TaskStatus (field 4) of a StatusUpdate; the other fields repeat it.
func decodeStatusUpdate(b []byte) (mesos.TaskStatus, error) {
	var st mesos.TaskStatus
	err := walkFields(b, func(field, wire uint64, _ uint64, raw []byte) error {
		if field == 4 && wire == proto.WireBytes {
			return st.Unmarshal(raw)
		}
		return nil
	})
	if err == nil && st.TaskID.Value == "" {
		err = errors.New("StatusUpdate without a status")
	}
	return st, err
}

// walkFields calls f for each field of a protobuf message: v for varint and fixed64 fields, raw for
// length-delimited ones.
func walkFields(b []byte, f func(field, wire, v uint64, raw []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad field key")
		}
		b = b[n:]
		var v uint64
		var raw []byte
		switch key & 7 {
		case proto.WireVarint:
			if v, n = binary.Uvarint(b); n <= 0 {
				return errors.New("bad varint")
			}
			b = b[n:]
		case proto.WireFixed64:
			if len(b) < 8 {
				return errors.New("truncated fixed64")
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case proto.WireBytes:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errors.New("truncated field")
			}
			raw, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return fmt.Errorf("unexpected wire type %d", key&7)
		}
		if err := f(key>>3, key&7, v, raw); err != nil {
			return err
		}
	}
	return nil
}

// readPid reads a forked.pid.
func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

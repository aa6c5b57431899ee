"""Protocol v1: the messages between hosts and the scheduler, and their JSON codec.

Sans-IO: nothing here does I/O or imports trio. See ``docs/protocol.md``.
"""

from ._codec import decode_client as decode_client
from ._codec import decode_server as decode_server
from ._codec import encode as encode
from ._errors import ErrorCode as ErrorCode
from ._errors import InvalidValue as InvalidValue
from ._errors import ProtocolError as ProtocolError
from ._messages import CLIENT_MESSAGES as CLIENT_MESSAGES
from ._messages import CONTROL_CHARACTERS as CONTROL_CHARACTERS
from ._messages import MAX_ANNOUNCE_INTERVAL as MAX_ANNOUNCE_INTERVAL
from ._messages import MAX_BATCH_MESSAGES as MAX_BATCH_MESSAGES
from ._messages import MAX_FAILED_PARENTS as MAX_FAILED_PARENTS
from ._messages import MAX_PIECES_PER_MESSAGE as MAX_PIECES_PER_MESSAGE
from ._messages import MAX_UPLOAD_BANDWIDTH as MAX_UPLOAD_BANDWIDTH
from ._messages import MIN_ANNOUNCE_INTERVAL as MIN_ANNOUNCE_INTERVAL
from ._messages import SEED_SUFFIX as SEED_SUFFIX
from ._messages import SERVER_MESSAGES as SERVER_MESSAGES
from ._messages import SUBPROTOCOL as SUBPROTOCOL
from ._messages import Ack as Ack
from ._messages import AnnounceHost as AnnounceHost
from ._messages import BackToSource as BackToSource
from ._messages import Batch as Batch
from ._messages import BatchReply as BatchReply
from ._messages import ClientMessage as ClientMessage
from ._messages import CloseCode as CloseCode
from ._messages import DownloadFailed as DownloadFailed
from ._messages import DownloadFinished as DownloadFinished
from ._messages import DownloadStarted as DownloadStarted
from ._messages import ErrorReply as ErrorReply
from ._messages import Evicted as Evicted
from ._messages import FetchTask as FetchTask
from ._messages import HostAccepted as HostAccepted
from ._messages import HostPayload as HostPayload
from ._messages import HostType as HostType
from ._messages import LeaveHost as LeaveHost
from ._messages import LeavePeer as LeavePeer
from ._messages import ParentPayload as ParentPayload
from ._messages import PiecesFinished as PiecesFinished
from ._messages import RegisterPeer as RegisterPeer
from ._messages import Reschedule as Reschedule
from ._messages import Schedule as Schedule
from ._messages import ScheduleAction as ScheduleAction
from ._messages import ServerMessage as ServerMessage
from ._messages import TaskPayload as TaskPayload
from ._messages import is_hostname as is_hostname
from ._messages import is_ip_literal as is_ip_literal
from ._messages import task_id_for_url as task_id_for_url

__all__ = [
    "CLIENT_MESSAGES",
    "CONTROL_CHARACTERS",
    "MAX_ANNOUNCE_INTERVAL",
    "MAX_BATCH_MESSAGES",
    "MAX_FAILED_PARENTS",
    "MAX_PIECES_PER_MESSAGE",
    "MAX_UPLOAD_BANDWIDTH",
    "MIN_ANNOUNCE_INTERVAL",
    "SEED_SUFFIX",
    "SERVER_MESSAGES",
    "SUBPROTOCOL",
    "Ack",
    "AnnounceHost",
    "BackToSource",
    "Batch",
    "BatchReply",
    "ClientMessage",
    "CloseCode",
    "DownloadFailed",
    "DownloadFinished",
    "DownloadStarted",
    "ErrorCode",
    "ErrorReply",
    "Evicted",
    "FetchTask",
    "HostAccepted",
    "HostPayload",
    "HostType",
    "InvalidValue",
    "LeaveHost",
    "LeavePeer",
    "ParentPayload",
    "PiecesFinished",
    "ProtocolError",
    "RegisterPeer",
    "Reschedule",
    "Schedule",
    "ScheduleAction",
    "ServerMessage",
    "TaskPayload",
    "decode_client",
    "decode_server",
    "encode",
    "is_hostname",
    "is_ip_literal",
    "task_id_for_url",
]

"""Pure judges: each turns one observation (local or in-network) into an Outcome, with no I/O."""

from checks.judges.dns import classify_address, judge_dns
from checks.judges.http import judge_http
from checks.judges.inference import judge_chat, judge_completion, judge_embedding, judge_stream
from checks.judges.key import judge_key_format, judge_key_valid, judge_listed
from checks.judges.tcp import judge_tcp
from checks.judges.url import DATAWORKS_DOMAIN, judge_url

__all__ = ["DATAWORKS_DOMAIN", "classify_address", "judge_chat", "judge_completion", "judge_dns", "judge_embedding",
           "judge_http", "judge_key_format", "judge_key_valid", "judge_listed", "judge_stream", "judge_tcp",
           "judge_url"]

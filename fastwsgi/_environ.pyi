"""Type stubs for fastwsgi._environ, the compiled PEP 3333 environ builder."""
from typing import Any, Dict, Optional, Union

from fastwsgi._parser import HeadParser, ParsedRequest

class EnvironBuilder:
    def __init__(
        self,
        *,
        root_path: str = "",
        server_software: str = "fastwsgi",
        server_name: str = "localhost",
        server_port: object = 80,
        url_scheme: str = "http",
        multiprocess: bool = False,
        multithread: bool = False,
        errors: Optional[object] = None,
        file_wrapper: Optional[object] = None,
        base_environ: Optional[Dict[str, Any]] = None,
        secure_scheme_headers: Optional[Dict[str, str]] = None,
    ) -> None: ...
    @property
    def refusal_status(self) -> int: ...
    @property
    def refusal_reason(self) -> Optional[str]: ...
    def environ_for(
        self, request: ParsedRequest, remote_addr: str = "127.0.0.1",
        remote_port: Union[str, int] = "0", trusted_proxy: bool = False,
    ) -> Dict[str, Any]: ...
    def environ_from_uwsgi(
        self, data: bytes, remote_addr: str = "127.0.0.1", remote_port: Union[str, int] = "0",
        **limits: object,
    ) -> Dict[str, Any]: ...
    def environ_from_head(
        self, head: HeadParser, data: bytes, remote_addr: str = "127.0.0.1",
        remote_port: str = "0", trusted_proxy: bool = False,
    ) -> Dict[str, Any]: ...

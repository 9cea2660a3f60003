# Declarations of the Linux system calls the event loop makes, and only those.

from libc.stdint cimport uint32_t, uint64_t

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void* ptr
        int fd
        uint32_t u32
        uint64_t u64

    struct epoll_event:
        uint32_t events
        epoll_data_t data

    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event* event)
    int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout)

    enum:
        EPOLL_CLOEXEC
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLLRDHUP
        EPOLLEXCLUSIVE

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    enum:
        EFD_NONBLOCK
        EFD_CLOEXEC

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void* iov_base
        size_t iov_len

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t

    struct sockaddr:
        sa_family_t sa_family

    struct sockaddr_storage:
        sa_family_t ss_family

    struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags

    int accept4(int sockfd, sockaddr* addr, socklen_t* addrlen, int flags)
    ssize_t recv(int sockfd, void* buf, size_t len, int flags)
    ssize_t send(int sockfd, const void* buf, size_t len, int flags)
    ssize_t sendmsg(int sockfd, const msghdr* msg, int flags)
    int shutdown(int sockfd, int how)
    int setsockopt(int sockfd, int level, int optname, const void* optval, socklen_t optlen)

    enum:
        SOCK_NONBLOCK
        SOCK_CLOEXEC
        MSG_NOSIGNAL
        MSG_PEEK
        MSG_DONTWAIT
        SHUT_WR
        SHUT_RDWR

cdef extern from "<netinet/in.h>" nogil:
    enum:
        IPPROTO_TCP

cdef extern from "<netinet/tcp.h>" nogil:
    enum:
        TCP_NODELAY

cdef extern from "<sys/sendfile.h>" nogil:
    ssize_t sendfile(int out_fd, int in_fd, long* offset, size_t count)

cdef extern from "<unistd.h>" nogil:
    ssize_t read(int fd, void* buf, size_t count)
    ssize_t write(int fd, const void* buf, size_t count)
    ssize_t pread(int fd, void* buf, size_t count, long offset)
    int close(int fd)
    int dup(int fd)

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd* fds, unsigned long nfds, int timeout)
    enum:
        POLLOUT

cdef extern from "<errno.h>" nogil:
    int errno
    enum:
        EAGAIN
        EINTR
        EMFILE
        ENFILE
        ENOBUFS
        ENOMEM
        ECONNABORTED
        EPROTO

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    struct tm:
        pass
    int clock_gettime(int clk_id, timespec* tp)
    time_t time(time_t* t)
    tm* gmtime_r(const time_t* timep, tm* result)
    size_t strftime(char* s, size_t max, const char* fmt, const tm* t)
    enum:
        CLOCK_MONOTONIC

cdef extern from "<arpa/inet.h>" nogil:
    const char* inet_ntop(int af, const void* src, char* dst, socklen_t size)

cdef extern from * nogil:
    """
    #include <netinet/in.h>
    #include <sys/un.h>
    static const void* fastwsgi_sockaddr_ip(const struct sockaddr_storage* ss, unsigned short* port) {
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in* sin = (const struct sockaddr_in*)ss;
            *port = ntohs(sin->sin_port);
            return &sin->sin_addr;
        }
        if (ss->ss_family == AF_INET6) {
            const struct sockaddr_in6* sin6 = (const struct sockaddr_in6*)ss;
            *port = ntohs(sin6->sin6_port);
            return &sin6->sin6_addr;
        }
        *port = 0;
        return NULL;
    }
    """
    const void* fastwsgi_sockaddr_ip(const sockaddr_storage* ss, unsigned short* port)

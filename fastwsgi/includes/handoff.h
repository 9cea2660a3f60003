/* Passing a connection between worker processes: one descriptor per message over
 * a Unix socket (SCM_RIGHTS, unix(7)). Declared for Cython in handoff.pxd.
 */
#ifndef FASTWSGI_HANDOFF_H
#define FASTWSGI_HANDOFF_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Room for the one descriptor a message carries, aligned as cmsghdr wants. */
typedef union {
    struct cmsghdr header;
    char space[CMSG_SPACE(sizeof(int))];
} fastwsgi_fd_control;

/* A message of `length` bytes at `data`, with `control` as its ancillary data. */
static void fastwsgi_fd_message(struct msghdr *msg, struct iovec *iov, fastwsgi_fd_control *control,
                                void *data, size_t length)
{
    memset(msg, 0, sizeof(*msg));
    memset(control, 0, sizeof(*control));
    iov->iov_base = data;
    iov->iov_len = length;
    msg->msg_iov = iov;
    msg->msg_iovlen = 1;
    msg->msg_control = control->space;
    msg->msg_controllen = sizeof(control->space);
}

/* Sends `fd` with `length` bytes of `payload`; 0, or -1 with errno set.
 * Never waits: a full channel is EAGAIN and the descriptor stays ours. */
static int fastwsgi_send_fd(int channel, int fd, const char *payload, size_t length)
{
    struct iovec iov;
    struct msghdr msg;
    fastwsgi_fd_control control;
    struct cmsghdr *cmsg;
    ssize_t sent;

    fastwsgi_fd_message(&msg, &iov, &control, (void *)payload, length);
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    do {
        sent = sendmsg(channel, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent < 0 ? -1 : 0;
}

/* Takes one message: its payload into `payload` (at most `capacity` bytes) and
 * the descriptor it carries into *fd (-1 when it carried none, or when it could
 * not be received: the kernel closes a descriptor it cannot install). Returns
 * the payload's length (0 for a truncated one, which this code never writes),
 * or -1 with errno set (EAGAIN: nothing waits). */
static ssize_t fastwsgi_recv_fd(int channel, char *payload, size_t capacity, int *fd)
{
    struct iovec iov;
    struct msghdr msg;
    fastwsgi_fd_control control;
    struct cmsghdr *cmsg;
    ssize_t received;

    *fd = -1;
    fastwsgi_fd_message(&msg, &iov, &control, payload, capacity);
    do {
        received = recvmsg(channel, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (received < 0 && errno == EINTR);
    if (received < 0)
        return -1;
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS
                && cmsg->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
            break;
        }
    }
    return (msg.msg_flags & MSG_TRUNC) ? 0 : received;
}

#endif

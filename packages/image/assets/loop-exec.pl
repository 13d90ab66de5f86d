#!/usr/bin/perl
# Attaches FILE to a free loop device with auto-clear and partition scanning (LOOP_CONFIGURE),
# keeps the device open and runs COMMAND with COSA_DISK set to it. The loop device detaches by
# itself when the last holder (this command and its children, or a mount of it) goes away.
# Usage: perl loop-exec.pl FILE SECTOR_SIZE COMMAND [ARGS...]
use strict;
use warnings;
use Fcntl qw(O_RDWR F_SETFD);
use Errno qw(EBUSY);

my ($file, $block_size, @command) = @ARGV;
die "usage: loop-exec.pl FILE SECTOR_SIZE COMMAND...\n" unless defined $block_size && @command;
my ($LOOP_CTL_GET_FREE, $LOOP_CONFIGURE) = (0x4C82, 0x4C0A);
my ($LO_FLAGS_AUTOCLEAR, $LO_FLAGS_PARTSCAN) = (4, 8);

sysopen(my $backing, $file, O_RDWR) or die "loop-exec: $file: $!\n";
sysopen(my $control, '/dev/loop-control', O_RDWR) or die "loop-exec: /dev/loop-control: $!\n";
my ($loop, $device);
for my $attempt (1 .. 20) {
  my $n = ioctl($control, $LOOP_CTL_GET_FREE, 0);
  die "loop-exec: no free loop device: $!\n" unless defined $n;
  $n = 0 if $n eq '0 but true';
  $device = "/dev/loop$n";
  sysopen($loop, $device, O_RDWR) or die "loop-exec: $device: $!\n";
  # struct loop_config { u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]; }
  my $info = pack('Q5 L4 a64 a64 a32 Q2', 0, 0, 0, 0, 0, 0, 0, 0, $LO_FLAGS_AUTOCLEAR | $LO_FLAGS_PARTSCAN, substr($file, 0, 63), '', '', 0, 0);
  my $config = pack('L L', fileno($backing), $block_size) . $info . ("\0" x 64);
  last if ioctl($loop, $LOOP_CONFIGURE, $config);
  die "loop-exec: cannot attach $file to $device: $!\n" unless $! == EBUSY && $attempt < 20;
  close($loop); # taken by someone else between GET_FREE and CONFIGURE: try the next one
}
close($control);
close($backing);
fcntl($loop, F_SETFD, 0) or die "loop-exec: $!\n"; # the command inherits the open device
$ENV{COSA_DISK} = $device;
exec { $command[0] } @command or die "loop-exec: $command[0]: $!\n";

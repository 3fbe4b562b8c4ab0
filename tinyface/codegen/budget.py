"""Does the model fit the board? Checked before any file is generated.

Flash: the firmware (ESP-IDF + TFLM kernels + tinyface, ``budget.firmware_flash_bytes`` in
the board file) + the model + a compiled-in gallery must fit the app partition.
SRAM: the tensor arena must fit one allocation (``chip.sram_arena_bytes``), or the board's
PSRAM when it has some; the arena plus tinyface's own buffers (the frame decoder, the UART
receive ring that lets the next request stream in during inference, the gallery) must fit
the heap (``chip.sram_heap_bytes``); a board with a USB-Serial/JTAG port has a second
receive ring. The model input must also fit one protocol frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from tinyface.boards import Board
from tinyface.codegen.arena import ArenaPlan
from tinyface.errors import BudgetError
from tinyface.protocol import spec

# The serial drivers' buffers: platform_esp.cc.j2 is rendered with these. The receive ring holds
# a whole frame while the CPU runs an inference, so the next pipelined request streams in
# meanwhile (docs/protocol.md, "Pipelining"); a board with a USB-Serial/JTAG port
# (chip.usb_serial_jtag) has a second receive ring of the same size and a small transmit one.
UART_RX_BYTES = ((spec.MAX_FRAME + 1 + 127) // 128) * 128 + 128
UART_TX_BYTES = 2048
USB_JTAG_RX_BYTES = UART_RX_BYTES
USB_JTAG_TX_BYTES = 256  # ESP-IDF's USB_SERIAL_JTAG_DRIVER_CONFIG_DEFAULT
GALLERY_HEADER_BYTES = 4 + 2 + 2 + spec.MODEL_HASH_BYTES
GALLERY_TRAILER_BYTES = 4  # the hash of the compiled-in gallery the blob started from (gallery.h builtin_hash)


def gallery_ram_bytes(embedding_dim: int) -> int:
    """The gallery blob the firmware keeps in RAM (and in NVS)."""
    person = spec.MAX_NAME_BYTES + 2 + 2 + 4 * embedding_dim
    return GALLERY_HEADER_BYTES + spec.GALLERY_CAPACITY * person + GALLERY_TRAILER_BYTES


def serial_buffer_bytes(usb_serial_jtag: bool) -> int:
    """The serial drivers' rings: UART0's, and the USB-Serial/JTAG port's where the board has one."""
    return UART_RX_BYTES + UART_TX_BYTES + ((USB_JTAG_RX_BYTES + USB_JTAG_TX_BYTES) if usb_serial_jtag else 0)


def firmware_ram_bytes(embedding_dim: int, usb_serial_jtag: bool) -> int:
    """tinyface's own RAM besides the arena: decoder buffer, serial rings, gallery, LIST entries."""
    list_entries = spec.GALLERY_CAPACITY * spec.LIST_ENTRY.size  # on the stack while answering LIST
    return (spec.MAX_FRAME + serial_buffer_bytes(usb_serial_jtag) + gallery_ram_bytes(embedding_dim)
            + list_entries)


def builtin_gallery_flash_bytes(people: int, embedding_dim: int) -> int:
    return people * (spec.MAX_NAME_BYTES + 8 + 4 * embedding_dim)


@dataclass(frozen=True)
class Budget:
    board: str
    model_bytes: int
    firmware_flash_bytes: int
    gallery_flash_bytes: int
    app_flash_bytes: int  # the app partition
    flash_used_bytes: int
    arena_bytes: int
    arena_in_psram: bool
    firmware_ram_bytes: int
    sram_arena_bytes: int
    sram_heap_bytes: int
    psram_heap_bytes: int  # the PSRAM an arena can use (Board.psram_heap_bytes)
    ram_used_bytes: int  # internal SRAM: arena (unless in PSRAM) + firmware buffers
    input_bytes: int
    macs: int
    mac_budget: int  # the board's, for the kernel set below (Board.mac_budget_for)
    kernels: str = "esp-nn"  # firmware.kernels
    mac_budget_kernels: str = "esp-nn"  # the kernel set mac_budget was sized for (Board.mac_budget_kernels)

    @property
    def flash_free_bytes(self) -> int:
        return self.app_flash_bytes - self.flash_used_bytes

    @property
    def ram_free_bytes(self) -> int:
        return self.sram_heap_bytes - self.ram_used_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "flash_free_bytes": self.flash_free_bytes, "ram_free_bytes": self.ram_free_bytes}

    def summary(self) -> str:
        where = "PSRAM" if self.arena_in_psram else "SRAM"
        return (f"{self.board}: flash {self.flash_used_bytes:,} of {self.app_flash_bytes:,} B "
                f"(model {self.model_bytes:,}); arena {self.arena_bytes:,} B in {where}; "
                f"SRAM {self.ram_used_bytes:,} of {self.sram_heap_bytes:,} B; "
                f"{self.macs / 1e6:.2f} M MACs "
                f"(board budget {self.mac_budget / 1e6:.1f} M with {self.mac_budget_kernels} kernels"
                + ("" if self.mac_budget_kernels == self.kernels else f"; none measured for {self.kernels} kernels")
                + ")")


def check_budget(board: Board, model_bytes: int, arena: ArenaPlan, input_bytes: int, embedding_dim: int,
                 macs: int = 0, gallery_people: int = 0, kernels: str = "esp-nn") -> tuple[Budget, ArenaPlan]:
    """Check the model against ``board``; returns the budget and the arena plan with its
    placement (PSRAM only when internal SRAM cannot hold it and the board has PSRAM). The
    MAC budget reported is the board's for ``kernels`` (firmware.kernels; a model over it
    still builds, slower than the preset targets).

    Raises:
        BudgetError: over a limit; the message has the numbers and what to try.
    """
    if input_bytes + spec.ENROLL_REQUEST.size > spec.MAX_PAYLOAD:
        raise BudgetError(
            f"the model input ({input_bytes:,} B) does not fit one protocol frame "
            f"({spec.MAX_PAYLOAD - spec.ENROLL_REQUEST.size:,} B with an ENROLL name)",
            hint="use a smaller input (data.crop_size) or gray input (data.channels = 1)")
    gallery_flash = builtin_gallery_flash_bytes(gallery_people, embedding_dim)
    flash_used = board.firmware_flash_bytes + model_bytes + gallery_flash
    if flash_used > board.app_flash_bytes:
        raise BudgetError(
            f"{board.name}: firmware {board.firmware_flash_bytes:,} B + model {model_bytes:,} B"
            + (f" + gallery {gallery_flash:,} B" if gallery_flash else "")
            + f" = {flash_used:,} B > {board.app_flash_bytes:,} B app partition",
            hint="prune harder or use a smaller preset (tinyface build --preset esp32), "
                 "or a board with more flash (tinyface boards)")
    fw_ram = firmware_ram_bytes(embedding_dim, board.usb_serial_jtag)
    in_psram = arena.bytes > board.sram_arena_bytes or arena.bytes + fw_ram > board.sram_heap_bytes
    if in_psram and not (board.psram_heap_bytes and arena.bytes <= board.psram_heap_bytes):
        psram = f", nor {board.psram_heap_bytes:,} B of PSRAM heap" if board.psram_heap_bytes else ""
        raise BudgetError(
            f"{board.name}: tensor arena {arena.bytes:,} B ({arena.parts()}) "
            f"+ firmware buffers {fw_ram:,} B does not fit: one block of at most {board.sram_arena_bytes:,} B "
            f"and {board.sram_heap_bytes:,} B of heap{psram}",
            hint="use a smaller preset or input size, lower firmware.arena_margin, "
                 "or a board with more SRAM or PSRAM (esp32s3, esp32cam)")
    ram_used = fw_ram + (0 if in_psram else arena.bytes)
    if ram_used > board.sram_heap_bytes:
        raise BudgetError(f"{board.name}: firmware buffers {fw_ram:,} B exceed {board.sram_heap_bytes:,} B of heap")
    arena = replace(arena, in_psram=in_psram)
    budget = Budget(
        board=board.name, model_bytes=model_bytes, firmware_flash_bytes=board.firmware_flash_bytes,
        gallery_flash_bytes=gallery_flash, app_flash_bytes=board.app_flash_bytes, flash_used_bytes=flash_used,
        arena_bytes=arena.bytes, arena_in_psram=in_psram, firmware_ram_bytes=fw_ram,
        sram_arena_bytes=board.sram_arena_bytes, sram_heap_bytes=board.sram_heap_bytes,
        psram_heap_bytes=board.psram_heap_bytes, ram_used_bytes=ram_used, input_bytes=input_bytes, macs=macs,
        mac_budget=board.mac_budget_for(kernels), kernels=kernels,
        mac_budget_kernels=board.mac_budget_kernels(kernels),
    )
    return budget, arena
